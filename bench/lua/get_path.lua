-- GET the URL's path (list, metrics, health) with the API key.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

wrk.method = "GET"
wrk.headers = common.headers()
