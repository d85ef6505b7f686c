-- One sync of a process with its fleet's shared rate-limit state. Atomic: Redis runs a script
-- alone. Times are Redis's own clock (TIME), and durations cross the wire, never instants, so
-- the processes' clocks need not agree. Stored times are bounded by this clock (a closure by
-- now + max_hold, a cut by now), stale ones are removed, unreadable ones are repaired, and a
-- key of another type is never touched (the sync fails with an error instead).
--
-- KEYS[1]  hash: closed_until (ms), w_max (requests/s of the whole fleet), cut (ms),
--          cut_id (the cut's identity), plateau (ms the curve holds at w_max)
-- KEYS[2]  sorted set: member id -> last sync (ms)
-- ARGV[1]  this process's member id
-- ARGV[2]  how long a member counts without syncing (ms)
-- ARGV[3]  close the gate for this long from now (ms; 0: nothing to report)
-- ARGV[4]  this process's own cut: the fleet's rate at the cut (requests/s; 0: none)
-- ARGV[5]  how long ago that cut was made (ms)
-- ARGV[6]  the cut's identity (a retried sync sends the same: it is not stamped again)
-- ARGV[7]  the cut's plateau (ms)
-- ARGV[8]  cuts closer together than this are one wave (ms)
-- ARGV[9]  how long the keys live without any sync (ms)
-- ARGV[10] the longest closure (ms; max_hold)
-- ARGV[11] cuts older than this are forgotten (ms; forget_after)
-- Returns {closed_for_ms, w_max (string), since_cut_ms (-1: no cut), members, cut_id, plateau_ms}.
local state, members = KEYS[1], KEYS[2]

local function of_type(key, wanted)
  local kind = redis.call('TYPE', key)
  if type(kind) == 'table' then
    kind = kind['ok']
  end
  return kind == 'none' or kind == wanted
end
if not of_type(state, 'hash') or not of_type(members, 'zset') then
  return redis.error_reply('tower-reliability: a key of another type holds the fleet state: '
    .. state .. ' or ' .. members)
end

-- A finite number, or nil.
local function number(value)
  local n = tonumber(value)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then
    return nil
  end
  return n
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_hold = tonumber(ARGV[10])
local forget = tonumber(ARGV[11])
local wave = tonumber(ARGV[8])

redis.call('ZADD', members, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', members, '-inf', now - tonumber(ARGV[2]))
local count = redis.call('ZCARD', members)

-- The closure: bounded, expired when past, repaired when unreadable.
local closed_until = number(redis.call('HGET', state, 'closed_until'))
if closed_until == nil or closed_until <= now then
  redis.call('HDEL', state, 'closed_until')
  closed_until = now
elseif closed_until > now + max_hold then
  closed_until = now + max_hold
  redis.call('HSET', state, 'closed_until', closed_until)
end
local close_for = number(ARGV[3]) or 0
if close_for > 0 then
  local until_ms = now + math.min(close_for, max_hold)
  if until_ms > closed_until then
    closed_until = until_ms
    redis.call('HSET', state, 'closed_until', until_ms)
  end
end

-- The cut: at most now, forgotten after `forget`, removed whole when any part is unreadable.
local cut = number(redis.call('HGET', state, 'cut'))
local w_max = number(redis.call('HGET', state, 'w_max'))
local cut_id = redis.call('HGET', state, 'cut_id') or ''
local plateau = number(redis.call('HGET', state, 'plateau')) or 0
if plateau < 0 then
  plateau = 0
end
if cut == nil or w_max == nil or w_max <= 0 or now - cut >= forget then
  redis.call('HDEL', state, 'cut', 'w_max', 'cut_id', 'plateau')
  cut = nil
elseif cut > now then
  cut = now
  redis.call('HSET', state, 'cut', cut)
end

local new_w = number(ARGV[4]) or 0
local age = number(ARGV[5])
local new_id = ARGV[6]
local new_plateau = math.max(0, number(ARGV[7]) or 0)
if new_w > 0 and age ~= nil and age >= 0 and age < forget then
  local at = now - age
  if cut ~= nil and new_id == cut_id then
    -- The same cut again (a retried sync): nothing new but, perhaps, its plateau.
    if new_plateau > plateau then
      plateau = new_plateau
      redis.call('HSET', state, 'plateau', plateau)
    end
  elseif cut == nil or at - cut >= wave then
    cut, w_max, cut_id, plateau = at, new_w, new_id, new_plateau
    redis.call('HSET', state, 'w_max', ARGV[4], 'cut', at, 'cut_id', new_id, 'plateau', plateau)
  elseif math.abs(at - cut) < wave and new_plateau > plateau then
    -- Another cut of the same wave: its hint holds the fleet too.
    plateau = new_plateau
    redis.call('HSET', state, 'plateau', plateau)
  end
end

local ttl = tonumber(ARGV[9])
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', members, ttl)

if cut == nil then
  return {closed_until - now, '0', -1, count, '', 0}
end
return {closed_until - now, tostring(w_max), now - cut, count, cut_id, plateau}
