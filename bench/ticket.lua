-- One buyer after another holds 4 seats and pays for them: tickets sold and paid for one
-- event. A thread pays a hold as soon as one is granted, otherwise starts the next buyer's
-- hold (thread t takes buyers t, t+T, ... and buyer i seats 4i..4i+3). Paying ends a buyer's
-- session, so each buyer buys once; when a thread has no buyer left its requests are 403s.
-- BENCH_SCHEDULE, BENCH_FIRST_SEAT: the event's seats.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, threads, first, path
local next_buyer, pending = 0, {}
paid = 0

function init(args)
  buyers = common.load_buyers()
  threads = tonumber(os.getenv("BENCH_THREADS"))
  first = tonumber(os.getenv("BENCH_FIRST_SEAT"))
  path = "/api/v1/schedules/" .. os.getenv("BENCH_SCHEDULE") .. "/holds"
end

function request()
  local due = table.remove(pending)
  if due then
    local b = buyers[due.buyer]
    return wrk.format("POST", "/api/v1/holds/" .. due.hold .. "/payment", {
      ["Authorization"] = b.access,
      ["Idempotency-Key"] = "ticket-" .. due.hold,
    })
  end
  local i = next_buyer * threads + tid
  next_buyer = next_buyer + 1
  local b = buyers[(i % #buyers) + 1]
  local s = first + 4 * i
  return wrk.format("POST", path, {
    ["Authorization"] = b.access,
    ["Queue-Token"] = b.queue,
    ["Content-Type"] = "application/json",
  }, '{"seatIds":[' .. s .. ',' .. (s + 1) .. ',' .. (s + 2) .. ',' .. (s + 3) .. ']}')
end

function response(status, headers, body)
  common.count(status)
  if status == 201 then
    if body:find('"reservationId"', 1, true) then
      paid = paid + 1
    else
      local hold = body:match('"holdId":"([^"]+)"')
      local seat = tonumber(body:match('"seatId":(%d+)'))
      pending[#pending + 1] = { hold = hold, buyer = (math.floor((seat - first) / 4) % #buyers) + 1 }
    end
  end
end

function done()
  common.report(" paid=" .. common.sum("paid"))
end
