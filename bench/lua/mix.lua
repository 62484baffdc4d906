-- 70% GET /api/orders/:id, 20% POST /api/orders, 10% PATCH /api/orders/:id (metadata).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local ids = common.read_lines(os.getenv("BENCH_IDS"))
local body = common.read_file(os.getenv("BENCH_BODY"))
local read_headers = common.headers()
local write_headers = common.headers({ ["Content-Type"] = "application/json" })
local counter = 0

function request()
  counter = counter + 1
  local roll = math.random(100)
  if roll <= 70 then
    return wrk.format("GET", "/api/orders/" .. ids[math.random(#ids)], read_headers)
  elseif roll <= 90 then
    return wrk.format("POST", "/api/orders", write_headers, body)
  end
  local patch = '{"metadata": {"bench": "' .. counter .. '"}}'
  return wrk.format("PATCH", "/api/orders/" .. ids[math.random(#ids)], write_headers, patch)
end
