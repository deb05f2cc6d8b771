-- queue_status: where one user stands in a concert's waiting room right now. Read only.
--
-- A poll calls it only at a transition (its token's place has reached the cached front, or the
-- line was shuffled after the token was issued); every other poll is answered from the
-- replica's cached admission state without Redis.
--
-- KEYS[1] queue_places   HASH  userId -> place
-- KEYS[2] queue_line     ZSET  userId scored by place (users still waiting)
-- KEYS[3] queue_active   ZSET  userId scored by session end ms
-- KEYS[4] queue_admitted HASH  userId -> admission ms
-- KEYS[5] queue_ended    ZSET  userId scored by the ms their place or session ended early
-- KEYS[6] queue_state    HASH  admission state (gen, front)
-- ARGV[1] userId
--
-- Reply:
--   {"none"}                                   no place: left, skipped as abandoned, or the
--                                              session is over
--   {"waiting", place, sinceMs, gen, front}    still in line (place may differ from an older
--                                              token's after the shuffle at opening)
--   {"active",  place, admittedMs, untilMs, gen}
-- Complexity: O(log N).
--
-- Guarantee: reads one consistent snapshot of the user's standing and changes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user = ARGV[1]

local place = redis.call('HGET', KEYS[1], user)
if not place then
  return {'none'}
end
local st = redis.call('HMGET', KEYS[6], 'gen', 'front')
local gen = tonumber(st[1]) or 0
if redis.call('ZSCORE', KEYS[2], user) then
  local since = now
  local ended = redis.call('ZSCORE', KEYS[5], user)
  if ended and tonumber(ended) >= since then
    since = tonumber(ended) + 1
  end
  return {'waiting', tonumber(place), since, gen, tonumber(st[2]) or 0}
end
local untl = redis.call('ZSCORE', KEYS[3], user)
if untl and tonumber(untl) > now then
  local adm = tonumber(redis.call('HGET', KEYS[4], user)) or now
  return {'active', tonumber(place), adm, tonumber(untl), gen}
end
return {'none'}
