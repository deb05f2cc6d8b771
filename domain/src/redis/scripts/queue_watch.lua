-- queue_watch: what a gateway replica caches about one concert's waiting room: the admission
-- state, and the ended log since the replica last looked. Read only.
--
-- Each replica calls it about every 250 ms per concert it serves (one call per concert, not
-- per request), so that polls and the ACTIVE guard are answered without Redis.
--
-- KEYS[1] queue_state  HASH  admission state, as the admitter publishes it every tick
-- KEYS[2] queue_ended  ZSET  userId scored by the ms their place or session ended early
-- ARGV[1] the lowest ended score to return (inclusive), or "init" for a replica's first look:
--         then the ended entries of the last session length (plus a minute) are returned,
--         which are all that can still refuse a live ACTIVE token
-- ARGV[2] the most ended entries to return (the caller pages on)
-- ARGV[3] the default session length in ms, for concerts the admitter has not ticked yet
--
-- Reply: {stateFlat (HGETALL), endedFlat (member, score, ...), nowMs}
-- Complexity: O(F + log N + M) for F state fields and M ended entries returned.
--
-- Guarantee: state and ended tail come from one instant, and scores are Redis's clock, so a
-- reader that resumes from the highest score it saw never misses an entry.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HGETALL', KEYS[1])
local from
if ARGV[1] == 'init' then
  local session = tonumber(redis.call('HGET', KEYS[1], 'session_ms')) or tonumber(ARGV[3])
  from = now - session - 60000
else
  from = tonumber(ARGV[1])
end
local ended = redis.call('ZRANGEBYSCORE', KEYS[2], string.format('%d', from), '+inf',
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
return {state, ended, now}
