-- POST the payment of holds made by seat_hold.lua, each once, with its own Idempotency-Key.
-- Thread t pays holds t, t+T, ...; when its share runs out it starts over with fresh keys,
-- which the gateway refuses (409 HOLD_ALREADY_PAID): only 201s count as payments.
-- BENCH_HOLDS: "holdId,buyerIndex" lines.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
setup = common.setup
local buyers, holds
local k, round = 0, 0

function init(args)
  buyers = common.load_buyers()
  local threads = tonumber(os.getenv("BENCH_THREADS"))
  local all = {}
  for line in io.lines(os.getenv("BENCH_HOLDS")) do
    local hold, buyer = line:match("^([^,]+),(%d+)$")
    if hold then all[#all + 1] = { hold = hold, buyer = tonumber(buyer) } end
  end
  holds = {}
  for i = tid + 1, #all, threads do
    holds[#holds + 1] = all[i]
  end
end

function request()
  k = k + 1
  if k > #holds then
    k, round = 1, round + 1
  end
  local h = holds[k]
  local b = buyers[h.buyer]
  return wrk.format("POST", "/api/v1/holds/" .. h.hold .. "/payment", {
    ["Authorization"] = b.access,
    ["Idempotency-Key"] = "bench-" .. h.hold .. "-" .. round,
  })
end

function response(status)
  common.count(status)
end

function done()
  common.report()
end
