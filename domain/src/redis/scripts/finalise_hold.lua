-- finalise_hold: records in Redis a payment that Postgres has committed: seats sold, hold PAID.
--
-- KEYS[1] hold          HASH    the hold
-- KEYS[2] seat_owners   HASH    of the hold's schedule
-- KEYS[3] user_tickets  HASH    of the hold's schedule
-- KEYS[4] ga_remaining  STRING  of the hold's section (general admission only)
-- KEYS[5] hold_expiry   ZSET
-- KEYS[6] hold_paying   ZSET
-- KEYS[7] hold_events   STREAM  hold events for the worker's sink (format: holds/events.rs)
-- ARGV[1] holdId  ARGV[2] retention ms of the paid hold's record
--
-- Reply: {"ok", "paid"}, {"ok", "noop"} (already PAID) or {"err", "NOT_FOUND"}.
-- Complexity: O(seats).
--
-- Guarantee: idempotent; whatever state Redis reached, after it the hold's seats are "sold"
-- and it holds its places and tickets exactly once, because Postgres (the truth) says it is
-- paid. A hold that was ended meanwhile (only possible if a claim was settled wrongly) has its
-- seats, places and ticket count taken again.
local h = redis.call('HMGET', KEYS[1], 'user', 'state', 'schedule', 'section', 'seats', 'qty', 'amount', 'expires')
if not h[1] then
  return {'err', 'NOT_FOUND'}
end
if h[2] == 'PAID' then
  return {'ok', 'noop'}
end
if h[5] ~= '' then
  for seat in string.gmatch(h[5], '[^,]+') do
    redis.call('HSET', KEYS[2], seat, 'sold')
  end
end
if h[2] == 'RELEASED' or h[2] == 'EXPIRED' then
  if h[4] ~= '' then
    redis.call('DECRBY', KEYS[4], h[6])
  end
  redis.call('HINCRBY', KEYS[3], h[1], h[6])
end
redis.call('HSET', KEYS[1], 'state', 'PAID')
redis.call('HDEL', KEYS[1], 'claimed')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('XADD', KEYS[7], '*', 't', 'paid', 'h', ARGV[1], 'u', h[1], 'sc', h[3], 'se', h[4],
  's', h[5], 'q', h[6], 'a', h[7], 'x', h[8])
return {'ok', 'paid'}
