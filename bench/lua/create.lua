-- POST /api/orders with the body in BENCH_BODY (the API documentation's example order).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

wrk.method = "POST"
wrk.path = "/api/orders"
wrk.body = common.read_file(os.getenv("BENCH_BODY"))
wrk.headers = common.headers({ ["Content-Type"] = "application/json" })
