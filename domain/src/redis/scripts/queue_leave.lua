-- queue_leave: gives up a user's place or ends their ACTIVE session (leave, payment).
--
-- KEYS[1] queue_places     HASH  userId -> place
-- KEYS[2] queue_line       ZSET  userId scored by place
-- KEYS[3] queue_heartbeats ZSET  userId scored by last-seen ms
-- KEYS[4] queue_active     ZSET  userId scored by session end ms
-- KEYS[5] queue_admitted   HASH  userId -> admission ms
-- KEYS[6] queue_ended      ZSET  userId scored by the ms their place or session ended early
-- ARGV[1] userId
--
-- Reply: {"ok", hadPlace (0|1), wasActive (0|1), endedAtMs}
-- Complexity: O(log N).
--
-- Guarantee: in one step the user is out of the line and out of the ACTIVE set (so the
-- capacity is free at once) and the end is in the ended log, so no reader sees the capacity
-- freed without the end recorded; leaving twice is harmless.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local user = ARGV[1]

local had = redis.call('HDEL', KEYS[1], user)
redis.call('ZREM', KEYS[2], user)
redis.call('ZREM', KEYS[3], user)
local was_active = redis.call('ZREM', KEYS[4], user)
redis.call('HDEL', KEYS[5], user)
-- Recorded even when nothing was held: every token issued before now is spent either way.
redis.call('ZADD', KEYS[6], now, user)
return {'ok', had, was_active, now}
