-- GET the seat map of one section (a cache hit after the first request), as rotating buyers.
-- Requests are built once in init() and replies are not parsed, as in seat_hold.lua.
-- BENCH_SCHEDULE, BENCH_SECTION: what to read. BENCH_ACCEPT_ENCODING, when set, is sent as
-- Accept-Encoding (every browser sends "gzip, deflate, br"); wrk does not decode the body.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local requests
local k = 0

function init(args)
  local buyers = common.load_buyers()
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local encoding = os.getenv("BENCH_ACCEPT_ENCODING")
  local path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/seats?section=" .. os.getenv("BENCH_SECTION")
  requests = {}
  for i = tid + 1, #buyers, threads do
    local headers = { ["Authorization"] = buyers[i].access, ["Queue-Token"] = buyers[i].queue }
    if encoding and encoding ~= "" then
      headers["Accept-Encoding"] = encoding
    end
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
end

function request()
  k = k % #requests + 1
  return requests[k]
end
