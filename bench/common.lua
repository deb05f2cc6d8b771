-- Shared by the wrk scripts of scripts/bench-sales: buyers' tokens, thread ids, and a status
-- count per thread that done() prints as one "STATUS ..." line for the bench script to parse.
--
-- Environment (set by scripts/bench-sales):
--   BENCH_TOKENS  CSV of userId,accessToken,queueToken (gateway/examples/bench_tokens.rs)
--   BENCH_THREADS wrk's -t, so each thread can take a disjoint slice of seats and buyers
local M = {}

function M.load_buyers()
  local buyers = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    local id, access, queue = line:match("^(%d+),([^,]+),([^,]+)$")
    if id then
      buyers[#buyers + 1] = { id = tonumber(id), access = "Bearer " .. access, queue = queue }
    end
  end
  return buyers
end

-- setup() runs in wrk's main state, once per thread: number the threads.
local threads = {}
function M.setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

-- Per thread (its own Lua state): count every status seen.
statuses = {}
function M.count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

-- done() runs in the main state: sum the threads' counts.
function M.report(extra)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    parts[#parts + 1] = status .. "=" .. n
  end
  table.sort(parts)
  io.write("STATUS " .. table.concat(parts, " ") .. (extra or "") .. "\n")
end

function M.sum(name)
  local n = 0
  for _, thread in ipairs(threads) do
    n = n + (thread:get(name) or 0)
  end
  return n
end

return M
