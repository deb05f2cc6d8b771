-- hold_ga: records a general-admission hold, or gives its places back, in the same MULTI as
-- the DECRBY that took them.
--
-- The caller sends `MULTI`, then `DECRBY ga_remaining q; EVALSHA hold_ga ...` for each hold of
-- a replica's batch, then `EXEC` (holds/redis.rs): the decrement is seed 000's counter, and
-- this script is its compensation, run right behind it in the same atomic step. So the counter
-- is never seen below zero, and places are never left taken by a refused request.
--
-- KEYS[1] user_tickets      HASH    userId -> tickets held or bought for the schedule
-- KEYS[2] hold              HASH    the new hold
-- KEYS[3] hold_expiry       ZSET    holdId scored by expiry ms
-- KEYS[4] hold_events       STREAM  hold events for the worker's sink
-- KEYS[5] ga_remaining      STRING  places left in the section, already decremented by q
-- KEYS[6] inventory_loaded  STRING  the schedule's inventory is in Redis
-- ARGV[1] holdId  ARGV[2] userId  ARGV[3] scheduleId  ARGV[4] sectionId  ARGV[5] ttl ms
-- ARGV[6] ticket limit  ARGV[7] quantity  ARGV[8] amount
--
-- Reply: {"ok", expiresAtMs} or {"err", "NOT_LOADED" | "SOLD_OUT" | "HOLD_LIMIT_EXCEEDED"}.
-- Complexity: O(log N).
--
-- Guarantee: the places the decrement took are either recorded in the hold or returned to the
-- counter before anyone else runs: a section is never oversold (a hold exists only when the
-- decrement left the counter at 0 or above) and never undersold by a refusal; a user never
-- holds more than the limit.
local qty = tonumber(ARGV[7])
local refuse = function(code)
  redis.call('INCRBY', KEYS[5], qty)
  return {'err', code}
end
if redis.call('EXISTS', KEYS[6]) == 0 then
  return refuse('NOT_LOADED')
end
if tonumber(redis.call('GET', KEYS[5])) < 0 then
  return refuse('SOLD_OUT')
end
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if held + qty > tonumber(ARGV[6]) then
  return refuse('HOLD_LIMIT_EXCEEDED')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'schedule', ARGV[3], 'section', ARGV[4], 'seats', '',
  'qty', qty, 'amount', ARGV[8], 'state', 'HELD', 'expires', expires)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('HINCRBY', KEYS[1], ARGV[2], qty)
redis.call('XADD', KEYS[4], '*', 't', 'held', 'h', ARGV[1], 'u', ARGV[2], 'sc', ARGV[3], 'se', ARGV[4],
  's', '', 'q', qty, 'a', ARGV[8], 'x', expires)
return {'ok', expires}
