-- wrk script: the queue poll, GET /api/v1/concerts/{QUEUE_CONCERT}/queue, rotating through
-- the (accessToken, queueToken) pairs of QUEUE_TOKENS (one "access<TAB>queue" per line), so
-- the gateways verify a different pair of signatures on each request as real clients make them.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local prepared = {}
local i = 0

function init(args)
  local path = "/api/v1/concerts/" .. os.getenv("QUEUE_CONCERT") .. "/queue"
  for line in io.lines(os.getenv("QUEUE_TOKENS")) do
    local access, queue = line:match("^(%S+)\t(%S+)$")
    if access then
      prepared[#prepared + 1] = wrk.format("GET", path,
        { ["Authorization"] = "Bearer " .. access, ["Queue-Token"] = queue })
    end
  end
  -- Threads start at different points of the rotation.
  i = (tid * 7919) % #prepared
end

function request()
  i = i % #prepared + 1
  return prepared[i]
end

function done(summary, latency, requests)
  report(summary, latency)
end
