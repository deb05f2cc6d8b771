-- queue_join: places a user in a concert's waiting line, or returns the standing they already
-- have (still waiting, or ACTIVE).
--
-- KEYS[1] queue_seq        STRING  last place handed out
-- KEYS[2] queue_places     HASH    userId -> place (waiting or ACTIVE users)
-- KEYS[3] queue_line       ZSET    userId scored by place (users still waiting)
-- KEYS[4] queue_heartbeats ZSET    userId scored by last-seen ms (waiting users)
-- KEYS[5] queue_active     ZSET    userId scored by session end ms
-- KEYS[6] queue_admitted   HASH    userId -> admission ms
-- KEYS[7] queue_ended      ZSET    userId scored by the ms their place or session ended early
-- KEYS[8] queue_state      HASH    admission state (gen, front, open_seq)
-- ARGV[1] userId
-- ARGV[2] the sale's opening, epoch ms
--
-- Time is Redis's own clock (TIME), the one clock every queue script and the ended log use.
--
-- Reply:
--   {"new",     place, sinceMs, gen, front}  a new place (201)
--   {"waiting", place, sinceMs, gen, front}  the place the user already holds (200)
--   {"active",  place, admittedMs, untilMs, gen}  the user is ACTIVE (200)
-- `sinceMs` is the time the token is issued for; it is strictly later than any end recorded
-- for this user, so a token issued now is never refused by an older leave.
-- Complexity: O(log N).
--
-- Guarantee: places are 1, 2, 3, ... with no gap and no duplicate, and a user holds at most
-- one place per concert however many times or however concurrently they join.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user = ARGV[1]
local opens = tonumber(ARGV[2])

local st = redis.call('HMGET', KEYS[8], 'gen', 'front', 'open_seq')
local gen = tonumber(st[1]) or 0
local front = tonumber(st[2]) or 0

local since = now
local ended = redis.call('ZSCORE', KEYS[7], user)
if ended and tonumber(ended) >= since then
  since = tonumber(ended) + 1
end

local existing = redis.call('HGET', KEYS[2], user)
if existing then
  if redis.call('ZSCORE', KEYS[3], user) then
    -- Joining again is a sign of life too.
    redis.call('ZADD', KEYS[4], now, user)
    return {'waiting', tonumber(existing), since, gen, front}
  end
  local untl = redis.call('ZSCORE', KEYS[5], user)
  if untl and tonumber(untl) > now then
    local adm = tonumber(redis.call('HGET', KEYS[6], user)) or now
    return {'active', tonumber(existing), adm, tonumber(untl), gen}
  end
  -- A session that ran out but that the admitter has not swept yet: the place is spent, so
  -- clean it up here and hand out a new place below.
  redis.call('ZREM', KEYS[5], user)
  redis.call('HDEL', KEYS[6], user)
end

-- The first join at or after the opening records where the pre-queue ends, so that the
-- shuffle at opening permutes exactly the users who joined before the sale opened.
if now >= opens and not st[3] then
  redis.call('HSET', KEYS[8], 'open_seq', tonumber(redis.call('GET', KEYS[1]) or '0'))
end

local place = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], user, place)
redis.call('ZADD', KEYS[3], place, user)
redis.call('ZADD', KEYS[4], now, user)
return {'new', place, since, gen, front}
