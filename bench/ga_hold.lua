-- POST a general-admission hold of quantity 1 per request, as rotating buyers.
-- BENCH_SCHEDULE, BENCH_GA_SECTION: where.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, threads, path, body
local k = 0

function init(args)
  buyers = common.load_buyers()
  threads = tonumber(os.getenv("BENCH_THREADS"))
  path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/holds"
  body = '{"sectionId":' .. os.getenv("BENCH_GA_SECTION") .. ',"quantity":1}'
end

function request()
  local b = buyers[((k * threads + tid) % #buyers) + 1]
  k = k + 1
  return wrk.format("POST", path, {
    ["Authorization"] = b.access,
    ["Queue-Token"] = b.queue,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status)
  common.count(status)
end

function done()
  common.report()
end
