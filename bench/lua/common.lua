-- Shared by the bench scripts: the API key and the files the harness wrote.
local common = {}

function common.read_file(path)
  local handle = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  local text = handle:read("*a")
  handle:close()
  return text
end

function common.read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function common.headers(extra)
  local headers = { ["X-API-Key"] = os.getenv("BENCH_API_KEY") or "" }
  for name, value in pairs(extra or {}) do headers[name] = value end
  return headers
end

return common
