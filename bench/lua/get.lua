-- GET /api/orders/:id for ids picked at random from BENCH_IDS (one per line).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local ids = common.read_lines(os.getenv("BENCH_IDS"))
local headers = common.headers()

function request()
  return wrk.format("GET", "/api/orders/" .. ids[math.random(#ids)], headers)
end
