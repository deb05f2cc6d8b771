-- GET the seat map of one section (a cache hit after the first request), as rotating buyers.
-- BENCH_SCHEDULE, BENCH_SECTION: what to read.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, n, path

function init(args)
  buyers = common.load_buyers()
  path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/seats?section=" .. os.getenv("BENCH_SECTION")
  n = tid
end

function request()
  n = n + 1
  local b = buyers[(n % #buyers) + 1]
  return wrk.format("GET", path, { ["Authorization"] = b.access, ["Queue-Token"] = b.queue })
end

function response(status)
  common.count(status)
end

function done()
  common.report()
end
