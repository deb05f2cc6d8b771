-- hold_ga: takes the places of the general-admission holds of one section a replica batched
-- with one DECRBY, records each hold that fits, and gives the places of the others back.
--
-- The DECRBY of the batch's total (`taken`) is seed 000's counter, and the INCRBY of what was
-- refused is its compensation. Seed 000 sent them as separate commands, so the counter read
-- low in between and a crash there lost places; here both run inside one script, which Redis
-- runs as a transaction (nothing else runs between its commands). So the counter is never
-- seen below zero, and places are never left taken by a refused request.
--
-- KEYS[1] inventory_loaded  STRING  the schedule's inventory is in Redis
-- KEYS[2] user_tickets      HASH    userId -> tickets held or bought for the schedule
-- KEYS[3] hold_expiry       ZSET    holdId scored by expiry ms
-- KEYS[4] hold_events       STREAM  hold events for the worker's sink
-- KEYS[5] ga_remaining      STRING  places left in the section
-- KEYS[5 + i] hold          HASH    the new hold i
-- ARGV[1] scheduleId  ARGV[2] sectionId  ARGV[3] ttl ms  ARGV[4] ticket limit  ARGV[5] taken
-- then per hold: holdId, userId, quantity, amount
--
-- Reply: one reply per hold, in order: {"ok", expiresAtMs} or
-- {"err", "NOT_LOADED" | "SOLD_OUT" | "HOLD_LIMIT_EXCEEDED"}.
-- Complexity: O(log N) per hold.
--
-- The holds granted go to the stream as one batch entry, and into the expiry ZSET with one
-- ZADD: under load a `redis.call` costs more than the work it does, so a granted hold makes two
-- calls (HINCRBY, HSET) plus its share of the batch's two. The entry (parsed by
-- domain/src/holds/events.rs, which owns the format, and written the same way by hold_seats.lua):
--   t held  sc scheduleId  se sectionId  x expiresMs  n count,
--   then per hold: h "holdId|userId|quantity|amount|seatIds" (seat ids comma-separated).
--
-- Guarantee: the places the decrement took are either recorded in a hold or returned to the
-- counter before anyone else runs: a section is never oversold and never undersold by a
-- refusal; a user never holds more than the limit. Holds are decided one after the other, each
-- seeing what the ones before it took, exactly as if each had come alone with its own
-- `DECRBY`, in this order: a hold fits when the places left before it cover its quantity.
local taken = tonumber(ARGV[5])
local replies = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 6, #ARGV, 4 do
    replies[#replies + 1] = {'err', 'NOT_LOADED'}
  end
  return replies
end
-- Places left before this batch's decrement.
local left = redis.call('DECRBY', KEYS[5], taken) + taken
local limit = tonumber(ARGV[4])
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
-- Formatted once as an integer: Lua would format the number for every command as a float.
local at = string.format('%d', expires)
local refused = 0
local expiry = {}
local granted = {'t', 'held', 'sc', ARGV[1], 'se', ARGV[2], 'x', at, 'n', 0}
for a = 6, #ARGV, 4 do
  local hold, user, q, amount = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local qty = tonumber(q)
  if qty > left then
    refused = refused + qty
    replies[#replies + 1] = {'err', 'SOLD_OUT'}
  elseif redis.call('HINCRBY', KEYS[2], user, qty) > limit then
    -- Taken back at once: the script is atomic, so nobody saw the count over the limit.
    redis.call('HINCRBY', KEYS[2], user, -qty)
    refused = refused + qty
    replies[#replies + 1] = {'err', 'HOLD_LIMIT_EXCEEDED'}
  else
    left = left - qty
    redis.call('HSET', KEYS[5 + (a - 2) / 4], 'user', user, 'schedule', ARGV[1], 'section', ARGV[2],
      'seats', '', 'qty', q, 'amount', amount, 'state', 'HELD', 'expires', at)
    expiry[#expiry + 1] = at
    expiry[#expiry + 1] = hold
    granted[#granted + 1] = 'h'
    granted[#granted + 1] = hold .. '|' .. user .. '|' .. q .. '|' .. amount .. '|'
    replies[#replies + 1] = {'ok', expires}
  end
end
if #expiry > 0 then
  redis.call('ZADD', KEYS[3], unpack(expiry))
  granted[10] = #expiry / 2
  redis.call('XADD', KEYS[4], '*', unpack(granted))
end
if refused > 0 then
  redis.call('INCRBY', KEYS[5], refused)
end
return replies
