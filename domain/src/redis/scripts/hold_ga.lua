-- hold_ga: records a general-admission hold after its places were taken from the counter.
--
-- The places themselves are taken by the caller with MULTI/DECRBY (see holds/redis.rs); this
-- script runs only when that decrement left the counter at 0 or above.
--
-- KEYS[1] user_tickets  HASH    userId -> tickets held or bought for the schedule
-- KEYS[2] hold          HASH    the new hold
-- KEYS[3] hold_expiry   ZSET    holdId scored by expiry ms
-- KEYS[4] hold_events   STREAM  hold events for the worker's sink
-- KEYS[5] ga_remaining  STRING  places left in the section (given back on refusal)
-- ARGV[1] holdId  ARGV[2] userId  ARGV[3] scheduleId  ARGV[4] sectionId  ARGV[5] ttl ms
-- ARGV[6] ticket limit  ARGV[7] quantity  ARGV[8] amount
--
-- Reply: {"ok", expiresAtMs} or {"err", "HOLD_LIMIT_EXCEEDED"}.
-- Complexity: O(log N).
--
-- Guarantee: either the hold is recorded with the places the caller took, or those places are
-- returned to the counter in the same atomic step; a user never holds more than the limit.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local qty = tonumber(ARGV[7])
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if held + qty > tonumber(ARGV[6]) then
  redis.call('INCRBY', KEYS[5], qty)
  return {'err', 'HOLD_LIMIT_EXCEEDED'}
end
local expires = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'schedule', ARGV[3], 'section', ARGV[4], 'seats', '',
  'qty', qty, 'amount', ARGV[8], 'state', 'HELD', 'expires', expires)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
redis.call('HINCRBY', KEYS[1], ARGV[2], qty)
redis.call('XADD', KEYS[4], '*', 't', 'held', 'h', ARGV[1], 'u', ARGV[2], 'sc', ARGV[3], 'se', ARGV[4],
  's', '', 'q', qty, 'a', ARGV[8], 'x', expires)
return {'ok', expires}
