-- One sync of a process with its fleet's shared rate-limit state. Atomic: Redis runs a script
-- alone. Times are Redis's own clock (TIME), and durations cross the wire, never instants, so
-- the processes' clocks need not agree.
--
-- KEYS[1]  hash: closed_until (ms), w_max (requests/s of the whole fleet), cut (ms)
-- KEYS[2]  sorted set: member id -> last sync (ms)
-- ARGV[1]  this process's member id
-- ARGV[2]  how long a member counts without syncing (ms)
-- ARGV[3]  close the gate for this long from now (ms; 0: nothing to report)
-- ARGV[4]  a cut of the adaptive rate: the fleet's rate at the cut (requests/s; 0: none)
-- ARGV[5]  cuts closer together than this are one wave (ms)
-- ARGV[6]  how long the keys live without any sync (ms)
-- Returns {closed_for_ms, w_max (string), since_cut_ms (-1: no cut), members}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state, members = KEYS[1], KEYS[2]

redis.call('ZADD', members, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', members, '-inf', now - tonumber(ARGV[2]))
local count = redis.call('ZCARD', members)

local close_for = tonumber(ARGV[3])
if close_for > 0 then
  local until_ms = now + close_for
  local current = tonumber(redis.call('HGET', state, 'closed_until') or '0')
  if until_ms > current then
    redis.call('HSET', state, 'closed_until', until_ms)
  end
end

local w_max = tonumber(ARGV[4])
if w_max > 0 then
  local last = tonumber(redis.call('HGET', state, 'cut') or '0')
  if now - last >= tonumber(ARGV[5]) then
    redis.call('HSET', state, 'w_max', ARGV[4], 'cut', now)
  end
end

local ttl = tonumber(ARGV[6])
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', members, ttl)

local closed_until = tonumber(redis.call('HGET', state, 'closed_until') or '0')
local cut = redis.call('HGET', state, 'cut')
local since_cut = -1
if cut then
  since_cut = math.max(0, now - tonumber(cut))
end
return {math.max(0, closed_until - now), redis.call('HGET', state, 'w_max') or '0', since_cut, count}
