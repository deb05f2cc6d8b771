-- queue_admit: one admission tick of one concert's waiting room, run by the worker that holds
-- the concert's lease.
--
-- KEYS[1] queue_lease      STRING  workerId of the single admitter, with a PX expiry
-- KEYS[2] queue_state      HASH    admission state (published for the gateways every tick)
-- KEYS[3] queue_line       ZSET    userId scored by place (users still waiting)
-- KEYS[4] queue_places     HASH    userId -> place
-- KEYS[5] queue_heartbeats ZSET    userId scored by last-seen ms
-- KEYS[6] queue_active     ZSET    userId scored by session end ms
-- KEYS[7] queue_admitted   HASH    userId -> admission ms
-- KEYS[8] queue_ended      ZSET    userId scored by the ms their place or session ended early
-- KEYS[9] queue_seq        STRING  last place handed out
-- ARGV[1]  workerId
-- ARGV[2]  leaseMs          how long the lease lasts without renewal (failover time)
-- ARGV[3]  admitPerSecond   policy: the admission rate
-- ARGV[4]  maxActive        policy: the most users ACTIVE at once
-- ARGV[5]  sessionMs        policy: how long a session lasts
-- ARGV[6]  graceMs          policy: a waiting user silent for longer is skipped as abandoned
-- ARGV[7]  maxScan          bound on the entries one tick expires, sweeps or walks past
-- ARGV[8]  opensMs          the sale's opening (no admission before it)
-- ARGV[9]  closesMs         the sale's close (no admission after it)
-- ARGV[10] shuffleAtOpen    1: permute the pre-queue once, at the first tick after opening
-- ARGV[11] seed             seed of that permutation (a positive integer below 2^31)
-- ARGV[12] burstMs          the token bucket holds at most this many ms of the rate
-- ARGV[13] endedRetentionMs ended entries older than this are trimmed
--
-- Reply: {"busy", ownerWorkerId} when another worker holds the lease, else
--        {"ok", admitted, abandoned, expired, waiting, active, front, shuffled, admittedTotal}
-- Complexity: O((E + S + n + maxScan) log N) for E expired sessions, S stale heartbeats (each
-- at most maxScan) and n admitted; the one-off shuffle at opening is O(P log N) for a
-- pre-queue of P users.
--
-- Guarantee: never more than maxActive users ACTIVE, never more than admitPerSecond x elapsed
-- (plus one burst) admitted whichever worker runs the tick, and admission in place order,
-- skipping users who left or went silent for longer than graceMs.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local worker = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local max_active = tonumber(ARGV[4])
local session = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local max_scan = tonumber(ARGV[7])
local opens = tonumber(ARGV[8])
local closes = tonumber(ARGV[9])
local shuffle = ARGV[10] == '1'
local seed = tonumber(ARGV[11])
local burst_ms = tonumber(ARGV[12])
local retention = tonumber(ARGV[13])

-- Integers go to Redis through %d: Lua's own number formatting switches to exponents.
local function int(x)
  return string.format('%d', x)
end

-- 1. The lease: one admitter per concert at a time. The token bucket below lives in the
-- state hash, so even two owners in a row (failover) cannot double the rate.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= worker then
  return {'busy', owner}
end
redis.call('SET', KEYS[1], worker, 'PX', lease_ms)

local st = redis.call('HMGET', KEYS[2], 'front', 'admitted_total', 'abandoned_total',
  'tokens', 'last_ms', 'gen', 'ewma', 'ewma_t', 'opened', 'open_seq')
local front0 = tonumber(st[1]) or 0
local admitted_total = tonumber(st[2]) or 0
local abandoned_total = tonumber(st[3]) or 0
local tokens = tonumber(st[4]) or 0
local last = tonumber(st[5])
local gen = tonumber(st[6]) or 0
local ewma = tonumber(st[7]) or 0
local ewma_t = tonumber(st[8]) or 0

-- 2. Sessions that ran out free their capacity. Their tokens expire on their own (a token's
-- exp is the session end), so no ended entry is needed.
local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', int(now), 'LIMIT', 0, max_scan)
for _, u in ipairs(expired) do
  redis.call('ZREM', KEYS[6], u)
  redis.call('HDEL', KEYS[7], u)
  redis.call('HDEL', KEYS[4], u)
end

-- 3. The ended log only has to outlive the longest session.
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. int(now - retention))

-- 4. Users silent for longer than the grace period lose their place wherever they stand, so
-- the waiting length stays honest and the front never stalls on them.
local abandoned = 0
local function abandon(u)
  redis.call('ZREM', KEYS[3], u)
  redis.call('ZREM', KEYS[5], u)
  redis.call('HDEL', KEYS[4], u)
  redis.call('ZADD', KEYS[8], int(now), u)
  abandoned = abandoned + 1
end
local stale_before = now - grace
local stale = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. int(stale_before),
  'LIMIT', 0, max_scan)
for _, u in ipairs(stale) do
  if redis.call('ZSCORE', KEYS[3], u) then
    abandon(u)
  else
    redis.call('ZREM', KEYS[5], u)
  end
end

-- 5. At the first tick after opening, once: shuffle the pre-queue if the policy says so.
-- Only while nobody has been admitted, so a policy switched on later never reorders a line
-- that is already moving.
local shuffled = 0
if now >= opens and st[9] ~= '1' then
  redis.call('HSET', KEYS[2], 'opened', 1)
  if shuffle and admitted_total == 0 then
    local boundary = tonumber(st[10]) or tonumber(redis.call('GET', KEYS[9]) or '0')
    local flat = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(boundary), 'WITHSCORES')
    local users, places = {}, {}
    for i = 1, #flat, 2 do
      users[#users + 1] = flat[i]
      places[#places + 1] = flat[i + 1]
    end
    -- Fisher-Yates with Park-Miller's minimal standard generator: 16807 * x stays below 2^53,
    -- so Lua's doubles compute it exactly; the modulo bias over a line of n users is n / 2^31.
    local x = (seed % 2147483646) + 1
    for i = #users, 2, -1 do
      x = (16807 * x) % 2147483647
      local j = (x % i) + 1
      users[i], users[j] = users[j], users[i]
    end
    -- The same set of places, dealt out in the new order: still gap-free, still below every
    -- later joiner's place.
    for i = 1, #users do
      redis.call('ZADD', KEYS[3], places[i], users[i])
      redis.call('HSET', KEYS[4], users[i], places[i])
    end
    if #users > 1 then
      gen = gen + 1
      shuffled = #users
    end
  end
end

-- 6. Admission: a token bucket refilled at the policy rate and capped at burstMs of it,
-- bounded by the free capacity, walking the line in place order.
local open = now >= opens and now < closes
local waiting_before = redis.call('ZCARD', KEYS[3])
local admitted = 0
if open then
  if last and now > last then
    tokens = tokens + rate * (now - last) / 1000
  end
  local cap = rate * burst_ms / 1000
  if tokens > cap then
    tokens = cap
  end
  local capacity = max_active - redis.call('ZCARD', KEYS[6])
  local n = math.min(math.floor(tokens), capacity)
  if n > 0 and waiting_before > 0 then
    -- Sessions end on a whole second (rounded up, so never shorter than the policy) so that
    -- the token's exp, in whole seconds, ends exactly with it.
    local untl = now + session
    if untl % 1000 ~= 0 then
      untl = untl + 1000 - (untl % 1000)
    end
    local candidates = redis.call('ZRANGE', KEYS[3], 0, n + max_scan - 1)
    for _, u in ipairs(candidates) do
      if admitted >= n then
        break
      end
      local hb = redis.call('ZSCORE', KEYS[5], u)
      if (not hb) or tonumber(hb) < stale_before then
        abandon(u)
      else
        -- Strictly after any end recorded for this user, so the new ACTIVE token is never
        -- refused by an older leave.
        local adm = now
        local ended = redis.call('ZSCORE', KEYS[8], u)
        if ended and tonumber(ended) >= adm then
          adm = tonumber(ended) + 1
        end
        redis.call('ZREM', KEYS[3], u)
        redis.call('ZREM', KEYS[5], u)
        redis.call('ZADD', KEYS[6], int(untl), u)
        redis.call('HSET', KEYS[7], u, int(adm))
        admitted = admitted + 1
      end
    end
  end
  tokens = tokens - admitted
  if tokens < 0 then
    tokens = 0
  end
else
  -- Before the opening the bucket stays empty, so the opening is not a burst.
  tokens = 0
end

-- 7. The front: every place below the first waiting user has been admitted, has left or was
-- skipped; with nobody waiting, every place handed out has.
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local seq = tonumber(redis.call('GET', KEYS[9]) or '0')
local front
if first[2] then
  front = tonumber(first[2]) - 1
else
  front = seq
end
if front < front0 then
  front = front0
end

-- 8. The observed rate: an EWMA (time constant 5 s) of how fast the front moves, in places
-- per second (admissions plus skipped places), sampled only while the sale is open and
-- someone was waiting; bias-corrected so the first seconds are not read as a slow line.
local rate_out = -1
if open and last and now > last and waiting_before > 0 then
  local dt = now - last
  local inst = (front - front0) * 1000 / dt
  local alpha = 1 - math.exp(-dt / 5000)
  ewma = ewma + alpha * (inst - ewma)
  ewma_t = ewma_t + dt
end
if ewma_t >= 1000 then
  rate_out = ewma / (1 - math.exp(-ewma_t / 5000))
end

admitted_total = admitted_total + admitted
abandoned_total = abandoned_total + abandoned
local waiting = redis.call('ZCARD', KEYS[3])
local active = redis.call('ZCARD', KEYS[6])
redis.call('HSET', KEYS[2],
  'front', int(front),
  'admitted_total', int(admitted_total),
  'abandoned_total', int(abandoned_total),
  'tokens', string.format('%.6f', tokens),
  'last_ms', int(now),
  'gen', int(gen),
  'ewma', string.format('%.6f', ewma),
  'ewma_t', int(ewma_t),
  'rate', string.format('%.6f', rate_out),
  'policy_rate', int(rate),
  'max_active', int(max_active),
  'session_ms', int(session),
  'grace_ms', int(grace),
  'opens_ms', int(opens),
  'closes_ms', int(closes),
  'waiting', int(waiting),
  'active', int(active),
  'seq', int(seq))
return {'ok', admitted, abandoned, #expired, waiting, active, front, shuffled, admitted_total}
