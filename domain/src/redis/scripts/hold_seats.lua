-- hold_seats: holds sets of numbered seats of one schedule, each set for its own new hold and
-- user, all or nothing per set. A replica sends the sets its concurrent requests asked for
-- in one call (holds/batch.rs); a single request is a call with one set.
--
-- KEYS[1] inventory_loaded STRING  the schedule's inventory is in Redis
-- KEYS[2] seat_owners      HASH    seatId -> holdId | "sold"
-- KEYS[3] user_tickets     HASH    userId -> tickets held or bought for the schedule
-- KEYS[4] hold_expiry      ZSET    holdId scored by expiry ms (HELD holds)
-- KEYS[5] hold_paying      ZSET    holdId scored by claim ms (PAYING holds)
-- KEYS[6] hold_events      STREAM  hold events for the worker's sink (format: holds/events.rs)
-- KEYS[6 + i] hold         HASH    the new hold of set i
-- ARGV[1] scheduleId  ARGV[2] ttl ms  ARGV[3] ticket limit
-- then per set: holdId, userId, amount, n, then its n seat ids (distinct)
--
-- Reply: one reply per set, in order: {"ok", expiresAtMs} or
-- {"err", "NOT_LOADED" | "HOLD_LIMIT_EXCEEDED" | "SEAT_UNAVAILABLE"}.
-- Complexity: O(n) in the number of seats, plus O(log N) per set for the ZSET and stream writes.
-- The sets held go to the stream as one batch entry and to the expiry ZSET with one ZADD, as
-- in hold_ga.lua (which describes the entry).
--
-- Guarantee: a seat has at most one live owner (a HELD hold not yet expired, a PAYING hold, or
-- "sold"); a hold whose expiry has passed counts as free even before the worker sweeps it; each
-- set is held whole or not at all; a user never holds more than the limit per schedule. Sets
-- are decided one after the other, each seeing what the sets before it took, exactly as if
-- they had been sent one by one in this order.
-- Time is Redis's clock, so replicas with skewed clocks agree on what has expired.
local sets = {}
local a = 4
while a <= #ARGV do
  local n = tonumber(ARGV[a + 3])
  sets[#sets + 1] = { hold = ARGV[a], user = ARGV[a + 1], amount = ARGV[a + 2], first = a + 4, last = a + 3 + n }
  a = a + 4 + n
end
local replies = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 1, #sets do
    replies[i] = {'err', 'NOT_LOADED'}
  end
  return replies
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[2])
-- Formatted once as an integer: Lua would format the number for every command as a float.
local at = string.format('%d', expires)
local limit = tonumber(ARGV[3])
-- The sets held, for one ZADD and one stream entry at the end (the entry as in hold_ga.lua).
local expiry = {}
local granted_now = {}
local granted = {'t', 'held', 'sc', ARGV[1], 'se', '', 'x', at, 'n', 0}

-- Whether a seat has a live owner.
local function taken(seat)
  local owner = redis.call('HGET', KEYS[2], seat)
  if not owner then
    return false
  end
  -- A set held earlier in this call is live, though its expiry is only written at the end.
  if owner == 'sold' or granted_now[owner] then
    return true
  end
  local until_ms = redis.call('ZSCORE', KEYS[4], owner)
  if until_ms and tonumber(until_ms) > now then
    return true
  end
  if redis.call('ZSCORE', KEYS[5], owner) then
    return true
  end
  -- Otherwise the owner's hold has expired (the sweep will end it and will not touch this
  -- seat, because it frees only seats it still owns) or has ended: the seat is free.
  return false
end

local function hold(set, key)
  local n = set.last - set.first + 1
  -- Counted first and taken back on a refusal (one call, not two, when the hold is granted);
  -- the script is atomic, so nobody sees the count in between.
  if redis.call('HINCRBY', KEYS[3], set.user, n) > limit then
    redis.call('HINCRBY', KEYS[3], set.user, -n)
    return {'err', 'HOLD_LIMIT_EXCEEDED'}
  end
  -- Check every seat before writing any: all or nothing.
  for i = set.first, set.last do
    if taken(ARGV[i]) then
      redis.call('HINCRBY', KEYS[3], set.user, -n)
      return {'err', 'SEAT_UNAVAILABLE'}
    end
  end
  local seats, owners = {}, {}
  for i = set.first, set.last do
    seats[#seats + 1] = ARGV[i]
    owners[#owners + 1] = ARGV[i]
    owners[#owners + 1] = set.hold
  end
  redis.call('HSET', KEYS[2], unpack(owners))
  local seat_list = table.concat(seats, ',')
  redis.call('HSET', key, 'user', set.user, 'schedule', ARGV[1], 'section', '', 'seats', seat_list,
    'qty', n, 'amount', set.amount, 'state', 'HELD', 'expires', at)
  expiry[#expiry + 1] = at
  expiry[#expiry + 1] = set.hold
  granted_now[set.hold] = true
  granted[#granted + 1] = 'h'
  granted[#granted + 1] = set.hold .. '|' .. set.user .. '|' .. n .. '|' .. set.amount .. '|' .. seat_list
  return {'ok', expires}
end

for i, set in ipairs(sets) do
  replies[i] = hold(set, KEYS[6 + i])
end
if #expiry > 0 then
  redis.call('ZADD', KEYS[4], unpack(expiry))
  granted[10] = #expiry / 2
  redis.call('XADD', KEYS[6], '*', unpack(granted))
end
return replies
