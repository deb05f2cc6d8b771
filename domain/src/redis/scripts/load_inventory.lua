-- load_inventory: loads one schedule's inventory from a Postgres snapshot, once.
--
-- KEYS[1] inventory_loaded STRING  set here; every selling script requires it
-- KEYS[2] seat_owners      HASH    seatId -> holdId | "sold"
-- KEYS[3] user_tickets     HASH    userId -> tickets held or bought
-- KEYS[4] hold_expiry      ZSET    holdId scored by expiry ms
-- KEYS[5 .. 4+g]           STRING  ga_remaining of each GA section, in snapshot order
-- KEYS[5+g ..]             HASH    hold of each live hold, in snapshot order
-- ARGV[1] snapshot JSON: {"sold": ["seatId", ...], "ga": [remaining, ...],
--         "holds": [{"id", "user", "section", "seats", "qty", "amount", "expires"}, ...],
--         "tickets": [["userId", n], ...]}
--
-- Reply: {"ok", 1} when this call loaded, {"ok", 0} when the schedule was already loaded.
-- Complexity: O(sold seats + held seats + users), once per schedule per Redis lifetime.
--
-- Guarantee: a schedule is loaded at most once (concurrent first requests race on the marker
-- and all but one do nothing), and nothing is sold from it before it is. GA counters are
-- loaded with INCRBY, not SET: a request that decremented the missing counter before the load
-- gives its places back afterwards, and INCRBY keeps that compensation exact.
if redis.call('SET', KEYS[1], '1', 'NX') == false then
  return {'ok', 0}
end
local snap = cjson.decode(ARGV[1])
for _, seat in ipairs(snap.sold) do
  redis.call('HSET', KEYS[2], seat, 'sold')
end
local g = #snap.ga
for i, remaining in ipairs(snap.ga) do
  redis.call('INCRBY', KEYS[4 + i], remaining)
end
for i, hold in ipairs(snap.holds) do
  redis.call('HSET', KEYS[4 + g + i], 'user', hold.user, 'schedule', hold.schedule,
    'section', hold.section, 'seats', hold.seats, 'qty', hold.qty, 'amount', hold.amount,
    'state', 'HELD', 'expires', hold.expires)
  redis.call('ZADD', KEYS[4], hold.expires, hold.id)
  if hold.seats ~= '' then
    for seat in string.gmatch(hold.seats, '[^,]+') do
      redis.call('HSET', KEYS[2], seat, hold.id)
    end
  end
end
for _, entry in ipairs(snap.tickets) do
  redis.call('HSET', KEYS[3], entry[1], entry[2])
end
return {'ok', 1}
