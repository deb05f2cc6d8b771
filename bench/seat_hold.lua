-- POST a hold of one seat per request, every request a different seat (thread t takes seats
-- t, t+T, t+2T, ... of the schedule), as the buyer derived from the seat. The requests are
-- built once in init() and nothing parses the replies: the load generator shares the cores
-- with the stack, and hello's wrk run does no per-request Lua either. scripts/bench-sales
-- reads the granted holds back from Postgres for the payment line.
-- BENCH_SCHEDULE, BENCH_FIRST_SEAT, BENCH_SEATS: the seats.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local requests
local k = 0

function init(args)
  local buyers = common.load_buyers()
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local first = tonumber(os.getenv("BENCH_FIRST_SEAT"))
  local seats = tonumber(os.getenv("BENCH_SEATS"))
  local path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/holds"
  requests = {}
  for offset = tid, seats - 1, threads do
    local b = buyers[(offset % #buyers) + 1]
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Authorization"] = b.access,
      ["Queue-Token"] = b.queue,
      ["Content-Type"] = "application/json",
    }, '{"seatIds":[' .. (first + offset) .. ']}')
  end
end

function request()
  k = k % #requests + 1
  return requests[k]
end
