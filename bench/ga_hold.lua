-- POST a general-admission hold of quantity 1 per request, as rotating buyers (thread t takes
-- buyers t, t+T, ...). Requests are built once in init() and replies are not parsed, as in
-- seat_hold.lua.
-- BENCH_SCHEDULE, BENCH_GA_SECTION: where.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local requests
local k = 0

function init(args)
  local buyers = common.load_buyers()
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/holds"
  local body = '{"sectionId":' .. os.getenv("BENCH_GA_SECTION") .. ',"quantity":1}'
  requests = {}
  for i = tid + 1, #buyers, threads do
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Authorization"] = buyers[i].access,
      ["Queue-Token"] = buyers[i].queue,
      ["Content-Type"] = "application/json",
    }, body)
  end
end

function request()
  k = k % #requests + 1
  return requests[k]
end
