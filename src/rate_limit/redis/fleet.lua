-- One sync of a process with its fleet's shared rate-limit state. Atomic: Redis runs a script
-- alone. Times are Redis's own clock (TIME), and durations cross the wire, never instants, so
-- the processes' clocks need not agree. Stored times are bounded by this clock (a closure by
-- now + max_hold, a cut by now), stale ones are removed, unreadable ones are repaired, and a
-- key of another type is never touched (the sync fails with an error instead).
--
-- The state is kept per scope (a model, or the client-wide scope) in one hash: a field is a
-- kind and the scope's tag, `kind` for the client-wide scope and `kind:name` for the scope
-- `name` (a kind has no `:`). A scope's fields exist only while it has something to share.
--
-- KEYS[1]  hash: per scope, closed_until (ms), w_max (requests/s of the whole fleet), cut (ms),
--          cut_id (the cut's identity), plateau (ms the curve holds at w_max)
-- KEYS[2]  sorted set: member id -> last sync (ms)
-- KEYS[3]  hash: member id -> its demand (new requests per second, decayed)
-- ARGV[1]  this process's member id
-- ARGV[2]  how long a member counts without syncing (ms)
-- ARGV[3]  this process's demand
-- ARGV[4]  the least weight of a member, as a part of an even share (0.1: a tenth of it)
-- ARGV[5]  cuts closer together than this are one wave (ms)
-- ARGV[6]  how long the keys live without any sync (ms)
-- ARGV[7]  the longest closure (ms; max_hold)
-- ARGV[8]  cuts older than this are forgotten (ms; forget_after)
-- ARGV[9]  the most scopes kept
-- ARGV[10..] what this process learned, six per scope: the scope's tag ('' or ':name'),
--          close its gate for this long from now (ms; 0: nothing to report), its own cut: the
--          fleet's rate at the cut (requests/s; 0: none), how long ago it was made (ms), its
--          identity (a retried sync sends the same: it is not stamped again), its plateau (ms)
-- Returns {members, share (string), then six per scope with something to share: tag,
--          closed_for_ms, w_max (string), since_cut_ms (-1: no cut), cut_id, plateau_ms}.
local state, members, demand = KEYS[1], KEYS[2], KEYS[3]

local function of_type(key, wanted)
  local kind = redis.call('TYPE', key)
  if type(kind) == 'table' then
    kind = kind['ok']
  end
  return kind == 'none' or kind == wanted
end
if not of_type(state, 'hash') or not of_type(members, 'zset') or not of_type(demand, 'hash') then
  return redis.error_reply('tower-reliability: a key of another type holds the fleet state: '
    .. state .. ', ' .. members .. ' or ' .. demand)
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
local me = ARGV[1]
local wave = tonumber(ARGV[5])
local max_hold = tonumber(ARGV[7])
local forget = tonumber(ARGV[8])
local max_scopes = tonumber(ARGV[9])

-- Membership, and this process's share: its demand over the fleet's, each member weighing at
-- least `floor` of an even share (an idle process can start), the weights summing to one.
local gone = redis.call('ZRANGEBYSCORE', members, '-inf', now - tonumber(ARGV[2]))
if #gone > 0 then
  redis.call('ZREM', members, unpack(gone))
  redis.call('HDEL', demand, unpack(gone))
end
redis.call('ZADD', members, now, me)
local mine = math.max(0, number(ARGV[3]) or 0)
redis.call('HSET', demand, me, tostring(mine))
local live = redis.call('ZRANGE', members, 0, -1)
local count = #live
local demands = redis.call('HMGET', demand, unpack(live))
local total = 0
for i = 1, count do
  local d = number(demands[i])
  if d == nil or d < 0 then
    d = 0
  end
  demands[i] = d
  total = total + d
end
local share = 1 / count
if total > 0 then
  local least = (number(ARGV[4]) or 0) * total / count
  local weights = 0
  for i = 1, count do
    weights = weights + math.max(demands[i], least)
  end
  share = math.max(mine, least) / weights
end

-- Every scope's fields, by tag.
local scopes, known = {}, 0
local fields = redis.call('HGETALL', state)
for i = 1, #fields, 2 do
  local field = fields[i]
  local colon = string.find(field, ':', 1, true)
  local kind, tag = field, ''
  if colon then
    kind, tag = string.sub(field, 1, colon - 1), string.sub(field, colon)
  end
  if kind == 'closed_until' or kind == 'w_max' or kind == 'cut' or kind == 'cut_id'
    or kind == 'plateau' then
    if scopes[tag] == nil then
      scopes[tag] = {}
      known = known + 1
    end
    scopes[tag][kind] = fields[i + 1]
  end
end

-- One scope's state, read: the closure bounded, expired when past, repaired when unreadable;
-- the cut at most now, forgotten after `forget`, removed whole when any part is unreadable.
local function load(tag, raw)
  local s = {}
  local closed_until = number(raw.closed_until)
  if closed_until == nil or closed_until <= now then
    if raw.closed_until ~= nil then
      redis.call('HDEL', state, 'closed_until' .. tag)
    end
    closed_until = now
  elseif closed_until > now + max_hold then
    closed_until = now + max_hold
    redis.call('HSET', state, 'closed_until' .. tag, closed_until)
  end
  s.closed_until = closed_until
  local cut, w_max = number(raw.cut), number(raw.w_max)
  s.plateau = math.max(0, number(raw.plateau) or 0)
  s.cut_id = raw.cut_id or ''
  if cut == nil or w_max == nil or w_max <= 0 or now - cut >= forget then
    if raw.cut ~= nil or raw.w_max ~= nil or raw.cut_id ~= nil or raw.plateau ~= nil then
      redis.call('HDEL', state, 'cut' .. tag, 'w_max' .. tag, 'cut_id' .. tag, 'plateau' .. tag)
    end
    cut = nil
  elseif cut > now then
    cut = now
    redis.call('HSET', state, 'cut' .. tag, cut)
  end
  s.cut, s.w_max = cut, w_max
  return s
end

local loaded = {}
for tag, raw in pairs(scopes) do
  loaded[tag] = load(tag, raw)
end

-- What this process learned, scope by scope; a new scope past the bound is not kept.
for i = 10, #ARGV - 5, 6 do
  local tag = ARGV[i]
  local s = loaded[tag]
  if s == nil and known < max_scopes then
    s = load(tag, {})
    loaded[tag] = s
    known = known + 1
  end
  if s ~= nil then
    local close_for = number(ARGV[i + 1]) or 0
    if close_for > 0 then
      local until_ms = now + math.min(close_for, max_hold)
      if until_ms > s.closed_until then
        s.closed_until = until_ms
        redis.call('HSET', state, 'closed_until' .. tag, until_ms)
      end
    end
    local new_w = number(ARGV[i + 2]) or 0
    local age = number(ARGV[i + 3])
    local new_id = ARGV[i + 4]
    local new_plateau = math.max(0, number(ARGV[i + 5]) or 0)
    if new_w > 0 and age ~= nil and age >= 0 and age < forget then
      local at = now - age
      if s.cut ~= nil and new_id == s.cut_id then
        -- The same cut again (a retried sync): nothing new but, perhaps, its plateau.
        if new_plateau > s.plateau then
          s.plateau = new_plateau
          redis.call('HSET', state, 'plateau' .. tag, s.plateau)
        end
      elseif s.cut == nil or at - s.cut >= wave then
        s.cut, s.w_max, s.cut_id, s.plateau = at, new_w, new_id, new_plateau
        redis.call('HSET', state, 'w_max' .. tag, ARGV[i + 2], 'cut' .. tag, at,
          'cut_id' .. tag, new_id, 'plateau' .. tag, new_plateau)
      elseif math.abs(at - s.cut) < wave and new_plateau > s.plateau then
        -- Another cut of the same wave: its hint holds the fleet too.
        s.plateau = new_plateau
        redis.call('HSET', state, 'plateau' .. tag, s.plateau)
      end
    end
  end
end

local ttl = tonumber(ARGV[6])
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', members, ttl)
redis.call('PEXPIRE', demand, ttl)

local reply = {count, tostring(share)}
for tag, s in pairs(loaded) do
  if s.closed_until > now or s.cut ~= nil then
    table.insert(reply, tag)
    table.insert(reply, s.closed_until - now)
    if s.cut == nil then
      table.insert(reply, '0')
      table.insert(reply, -1)
      table.insert(reply, '')
      table.insert(reply, 0)
    else
      table.insert(reply, tostring(s.w_max))
      table.insert(reply, now - s.cut)
      table.insert(reply, s.cut_id)
      table.insert(reply, s.plateau)
    end
  end
end
return reply
