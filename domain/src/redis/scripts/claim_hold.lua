-- claim_hold: moves a HELD hold to PAYING so that it cannot expire while it is being paid.
--
-- KEYS[1] hold         HASH  the hold
-- KEYS[2] hold_expiry  ZSET  holdId scored by expiry ms
-- KEYS[3] hold_paying  ZSET  holdId scored by claim ms
-- ARGV[1] holdId  ARGV[2] userId
--
-- Reply: {"ok", scheduleId, sectionId|"", "seat,ids"|"", quantity, amount, expiresAtMs} or
-- {"err", "NOT_FOUND" | "EXPIRED" | "ALREADY_PAID"}.
-- Complexity: O(log N).
--
-- Guarantee: only the owner can claim; a hold whose expiry has passed is never claimed, even
-- before the worker sweeps it; a hold is claimed by at most one payment at a time.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'user', 'state', 'expires', 'schedule', 'section', 'seats', 'qty', 'amount')
if not h[1] or h[1] ~= ARGV[2] then
  return {'err', 'NOT_FOUND'}
end
local state = h[2]
if state == 'PAYING' or state == 'PAID' then
  return {'err', 'ALREADY_PAID'}
end
if state == 'RELEASED' then
  return {'err', 'NOT_FOUND'}
end
if state == 'EXPIRED' or tonumber(h[3]) <= now then
  return {'err', 'EXPIRED'}
end
redis.call('HSET', KEYS[1], 'state', 'PAYING', 'claimed', now)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
return {'ok', h[4], h[5], h[6], h[7], h[8], h[3]}
