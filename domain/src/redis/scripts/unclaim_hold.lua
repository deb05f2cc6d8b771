-- unclaim_hold: puts a PAYING hold back to HELD with its original expiry (a payment that did
-- not commit: refused for lack of points, failed, or found unpaid by the reconciler).
--
-- KEYS[1] hold         HASH  the hold
-- KEYS[2] hold_expiry  ZSET  holdId scored by expiry ms
-- KEYS[3] hold_paying  ZSET  holdId scored by claim ms
-- ARGV[1] holdId
--
-- Reply: {"ok", "restored"} or {"ok", "noop"} when the hold is not PAYING.
-- Complexity: O(log N).
--
-- Guarantee: the hold is exactly as it was before the claim, so an unpaid hold still expires
-- at its original time (at once, if that time has passed: the worker's next sweep ends it).
local h = redis.call('HMGET', KEYS[1], 'state', 'expires')
if h[1] ~= 'PAYING' then
  return {'ok', 'noop'}
end
redis.call('HSET', KEYS[1], 'state', 'HELD')
redis.call('HDEL', KEYS[1], 'claimed')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], h[2], ARGV[1])
return {'ok', 'restored'}
