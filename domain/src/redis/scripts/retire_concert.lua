-- retire_concert: takes a concert off a work list (the sales registry or the waiting-room
-- registry) if nobody registered it lately.
--
-- KEYS[1] registry  ZSET  concertId scored by the epoch ms it was last registered
-- ARGV[1] concertId
-- ARGV[2] cutoff ms: remove only if the last registration is older than this
--
-- Reply: 1 if removed, 0 if not.
-- Complexity: O(log N).
--
-- Guarantee: a concert registered at or after the cutoff stays listed, so a gateway that
-- registered it within its refresh interval (far shorter than the cutoff's age) never loses
-- its registration to a removal decided on an older observation.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
