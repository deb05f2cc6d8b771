-- hold_seats: holds a set of numbered seats of one schedule for one user, all or nothing.
--
-- KEYS[1] inventory_loaded STRING  the schedule's inventory is in Redis
-- KEYS[2] seat_owners      HASH    seatId -> holdId | "sold"
-- KEYS[3] user_tickets     HASH    userId -> tickets held or bought for the schedule
-- KEYS[4] hold             HASH    the new hold
-- KEYS[5] hold_expiry      ZSET    holdId scored by expiry ms (HELD holds)
-- KEYS[6] hold_paying      ZSET    holdId scored by claim ms (PAYING holds)
-- KEYS[7] hold_events      STREAM  hold events for the worker's sink
-- ARGV[1] holdId  ARGV[2] userId  ARGV[3] scheduleId  ARGV[4] ttl ms  ARGV[5] ticket limit
-- ARGV[6] amount  ARGV[7..] seat ids (distinct)
--
-- Reply: {"ok", expiresAtMs} or {"err", "NOT_LOADED" | "HOLD_LIMIT_EXCEEDED" | "SEAT_UNAVAILABLE"}.
-- Complexity: O(n) in the number of seats, plus O(log N) for the ZSET and stream writes.
--
-- Guarantee: a seat has at most one live owner (a HELD hold not yet expired, a PAYING hold, or
-- "sold"); a hold whose expiry has passed counts as free even before the worker sweeps it; the
-- whole set is held or nothing is written; a user never holds more than the limit per schedule.
-- Time is Redis's clock, so replicas with skewed clocks agree on what has expired.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'err', 'NOT_LOADED'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #ARGV - 6
local held = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if held + n > tonumber(ARGV[5]) then
  return {'err', 'HOLD_LIMIT_EXCEEDED'}
end
-- Check every seat before writing any: all or nothing.
for i = 7, #ARGV do
  local owner = redis.call('HGET', KEYS[2], ARGV[i])
  if owner then
    if owner == 'sold' then
      return {'err', 'SEAT_UNAVAILABLE'}
    end
    local until_ms = redis.call('ZSCORE', KEYS[5], owner)
    if until_ms and tonumber(until_ms) > now then
      return {'err', 'SEAT_UNAVAILABLE'}
    end
    if redis.call('ZSCORE', KEYS[6], owner) then
      return {'err', 'SEAT_UNAVAILABLE'}
    end
    -- Otherwise the owner's hold has expired (the sweep will end it and will not touch this
    -- seat, because it frees only seats it still owns) or has ended: the seat is free.
  end
end
local seats = {}
for i = 7, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
  seats[#seats + 1] = ARGV[i]
end
local seat_list = table.concat(seats, ',')
local expires = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[4], 'user', ARGV[2], 'schedule', ARGV[3], 'section', '', 'seats', seat_list,
  'qty', n, 'amount', ARGV[6], 'state', 'HELD', 'expires', expires)
redis.call('ZADD', KEYS[5], expires, ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], n)
redis.call('XADD', KEYS[7], '*', 't', 'held', 'h', ARGV[1], 'u', ARGV[2], 'sc', ARGV[3], 'se', '',
  's', seat_list, 'q', n, 'a', ARGV[6], 'x', expires)
return {'ok', expires}
