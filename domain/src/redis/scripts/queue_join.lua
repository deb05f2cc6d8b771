-- queue_join: places a user in a concert's waiting line, or returns the place they already have.
--
-- KEYS[1] queue_seq     STRING  last place handed out
-- KEYS[2] queue_places  HASH    userId -> place
-- KEYS[3] queue_line    ZSET    userId scored by place (users still waiting)
-- KEYS[4] queue_heartbeats ZSET userId scored by last-seen ms
-- ARGV[1] userId
-- ARGV[2] now (epoch ms)
--
-- Reply: {"new", place} the first time, {"again", place} after that.
-- Complexity: O(log N).
--
-- Guarantee: places are 1, 2, 3, ... with no gap and no duplicate, and a user holds at most
-- one place per concert however many times or however concurrently they join.
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then
  return {'again', tonumber(existing)}
end
local place = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], place)
redis.call('ZADD', KEYS[3], place, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return {'new', place}
