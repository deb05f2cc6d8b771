-- ack_events: acknowledges hold events the sink wrote to Postgres, then deletes from the stream
-- every entry that comes before the first one the sink's group still has to write.
--
-- KEYS[1] hold_events  STREAM  a concert's hold events, read by the group ARGV[1] only
-- ARGV[1] group  ARGV[2..] entry ids written to Postgres
--
-- Reply: {"ok", entries deleted}.
-- Complexity: O(ids + deleted); whole stream nodes below the cut are freed at once.
--
-- Guarantee: nothing the group has not acknowledged is deleted: the cut is the oldest entry
-- still pending (delivered, not acknowledged: a batch in progress or left by a dead worker),
-- or, with none pending, the first entry after the last one delivered. So the stream holds
-- exactly the entries from the oldest unwritten one on, and its length is the sink's lag (an
-- entry acknowledged behind a slower batch stays counted until that batch is acknowledged).
-- Trimming below a cut costs a fraction of XDEL, which searches each id's stream node.
for i = 2, #ARGV, 1000 do
  -- In slices: unpack() of thousands of values would overflow Lua's stack.
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
local cut
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  cut = pending[2]
else
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for f = 1, #group, 2 do
      info[group[f]] = group[f + 1]
    end
    if info['name'] == ARGV[1] then
      local ms, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
      cut = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
    end
  end
end
return {'ok', redis.call('XTRIM', KEYS[1], 'MINID', cut)}
