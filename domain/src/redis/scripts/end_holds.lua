-- end_holds: ends HELD holds, by the owner's release or by expiry, and gives their seats back.
--
-- KEYS[1] hold_expiry  ZSET    holdId scored by expiry ms
-- KEYS[2] hold_events  STREAM  hold events for the worker's sink (format: holds/events.rs)
-- then four keys per hold i (i = 1..n), at KEYS[2 + 4(i-1) + 1..4]:
--   hold          HASH    the hold
--   seat_owners   HASH    of the hold's schedule
--   user_tickets  HASH    of the hold's schedule
--   ga_remaining  STRING  of the hold's section (touched only for a general-admission hold)
-- ARGV[1] mode: "release" or "expire"
-- ARGV[2] userId that releases (release mode; ignored on expiry)
-- ARGV[3] retention ms: how long an ended hold's record stays to answer late requests
-- ARGV[4..] hold ids, in the order of the key groups
--
-- Reply: one outcome per hold: "released" or "expired" (this call ended it), "live" (expire
-- mode, not yet due), "ended" (had already ended), "paid" (PAYING or PAID: not ended here),
-- "missing" (no such hold, or another user's hold in release mode). A missing hold is also
-- dropped from the expiry set, so a stray id there cannot come back on every sweep.
-- Complexity: O(seats) per hold.
--
-- Guarantee: a hold ends at most once, and its seats, places and ticket count are returned
-- exactly once; a seat is freed only while this hold still owns it; a PAYING hold is never
-- ended here, so a payment in flight cannot lose its seats.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local base = 2 + (i - 4) * 4
  local hold_key, owners, tickets, ga = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local h = redis.call('HMGET', hold_key, 'user', 'schedule', 'section', 'seats', 'qty', 'amount', 'state', 'expires')
  local user, state, expires = h[1], h[7], tonumber(h[8] or '0')
  if not user then
    redis.call('ZREM', KEYS[1], id)
    out[#out + 1] = 'missing'
  elseif mode == 'release' and user ~= ARGV[2] then
    out[#out + 1] = 'missing'
  elseif state == 'PAYING' or state == 'PAID' then
    out[#out + 1] = 'paid'
  elseif state ~= 'HELD' then
    out[#out + 1] = 'ended'
  elseif mode == 'expire' and expires > now then
    out[#out + 1] = 'live'
  else
    -- A hold released after its expiry has passed is recorded as expired: that is what it was.
    local reason = (expires <= now) and 'expired' or 'released'
    if h[4] ~= '' then
      for seat in string.gmatch(h[4], '[^,]+') do
        if redis.call('HGET', owners, seat) == id then
          redis.call('HDEL', owners, seat)
        end
      end
    end
    local qty = tonumber(h[5])
    if h[3] ~= '' then
      redis.call('INCRBY', ga, qty)
    end
    if redis.call('HINCRBY', tickets, user, -qty) <= 0 then
      redis.call('HDEL', tickets, user)
    end
    redis.call('HSET', hold_key, 'state', string.upper(reason))
    redis.call('PEXPIRE', hold_key, ARGV[3])
    redis.call('ZREM', KEYS[1], id)
    redis.call('XADD', KEYS[2], '*', 't', reason, 'h', id, 'u', user, 'sc', h[2], 'se', h[3],
      's', h[4], 'q', h[5], 'a', h[6], 'x', h[8])
    out[#out + 1] = reason
  end
end
return out
