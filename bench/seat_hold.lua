-- POST a hold of one seat per request, every request a different seat (thread t takes seats
-- t, t+T, t+2T, ... of the schedule), the buyer derived from the seat so that the payment
-- phase knows whose hold it is. Each granted hold is appended to BENCH_OUT.<tid> as
-- "holdId,buyerIndex".
-- BENCH_SCHEDULE, BENCH_FIRST_SEAT, BENCH_SEATS: the seats; BENCH_OUT: file prefix.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, threads, first, seats, path, out
local k = 0

function init(args)
  buyers = common.load_buyers()
  threads = tonumber(os.getenv("BENCH_THREADS"))
  first = tonumber(os.getenv("BENCH_FIRST_SEAT"))
  seats = tonumber(os.getenv("BENCH_SEATS"))
  path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/holds"
  out = io.open(os.getenv("BENCH_OUT") .. "." .. tid, "w")
end

function request()
  local offset = (k * threads + tid) % seats
  k = k + 1
  local b = buyers[(offset % #buyers) + 1]
  return wrk.format("POST", path, {
    ["Authorization"] = b.access,
    ["Queue-Token"] = b.queue,
    ["Content-Type"] = "application/json",
  }, '{"seatIds":[' .. (first + offset) .. ']}')
end

function response(status, headers, body)
  common.count(status)
  if status == 201 then
    local hold = body:match('"holdId":"([^"]+)"')
    local seat = tonumber(body:match('"seatId":(%d+)'))
    out:write(hold, ",", ((seat - first) % #buyers) + 1, "\n")
  end
end

function done()
  common.report()
end
