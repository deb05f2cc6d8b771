-- wrk script: POST /api/v1/concerts/{QUEUE_CONCERT}/queue, each request a different user who
-- has joined nothing yet (JOIN_TOKENS: one access token per line; thread k of JOIN_THREADS
-- takes lines k, k + JOIN_THREADS, ...). When a thread runs out it starts over, and those
-- re-joins answer 200: the report counts 201 (first joins) and 200 separately, so a run that
-- ran out of fresh users shows it.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local prepared = {}
local i = 0
created, again, other = 0, 0, 0

function init(args)
  local path = "/api/v1/concerts/" .. os.getenv("QUEUE_CONCERT") .. "/queue"
  local nthreads = tonumber(os.getenv("JOIN_THREADS"))
  local n = 0
  for line in io.lines(os.getenv("JOIN_TOKENS")) do
    if n % nthreads == tid then
      prepared[#prepared + 1] = wrk.format("POST", path, { ["Authorization"] = "Bearer " .. line })
    end
    n = n + 1
  end
end

function request()
  i = i % #prepared + 1
  return prepared[i]
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 200 then
    again = again + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, a, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    a = a + t:get("again")
    o = o + t:get("other")
  end
  report(summary, latency)
  io.write(string.format("JOINS created=%d again=%d other=%d\n", c, a, o))
end
