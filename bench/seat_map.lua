-- GET the seat map of one section (a cache hit after the first request), as rotating buyers.
-- BENCH_SCHEDULE, BENCH_SECTION: what to read. BENCH_ACCEPT_ENCODING, when set, is sent as
-- Accept-Encoding (every browser sends "gzip, deflate, br"); wrk does not decode the body.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, n, path
local encoding = os.getenv("BENCH_ACCEPT_ENCODING")

function init(args)
  buyers = common.load_buyers()
  path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/seats?section=" .. os.getenv("BENCH_SECTION")
  n = tid
end

function request()
  n = n + 1
  local b = buyers[(n % #buyers) + 1]
  local headers = { ["Authorization"] = b.access, ["Queue-Token"] = b.queue }
  if encoding and encoding ~= "" then
    headers["Accept-Encoding"] = encoding
  end
  return wrk.format("GET", path, headers)
end

function response(status)
  common.count(status)
end

function done()
  common.report()
end
