-- settle.lua: finish an admission, or checkpoint one still running. Mirrors Memory.Settle and
-- Memory.Checkpoint.
--
-- KEYS: two per op. ARGV[1] = now in µs or "" (Redis TIME), ARGV[2] = admission id, then per op:
-- kind, then the op's arguments (each kind has a fixed number of them: sizes below)...
--   1 bucket correct:  limit, window_us, delta_units          (k1 = TAT)
--   2 sliding correct: cost, actual                            (k1 = log zset, k2 = sum)
--   3 release slot:    (none)                                  (k1 = holders zset)
--   4 budget:          consumed, cost, actual, expire_ms, ttl_us (k1 = hash, k2 = reservations)
--   5 ledger add:      expire_ms, then three field, incr pairs (k1 = hash)
--   6 progress:        mode, ttl_ms                            (k1 = progress hash of this id)
--   7 ledger total:    expire_ms, pfield, requests, tokens, cost, cell prefix  (k1 = hash)
--   8 renew slot:      ttl_us                                  (k1 = holders zset; checkpoints)
--   9 once:            token, ttl_ms                           (k1 = the admission's marker)
--
-- Op 6, when present, comes first and makes amounts totals since admission: mode "c" (a
-- checkpoint) or "f" (the final settle of a checkpointed admission). The progress hash remembers,
-- per budget key, the spend charged so far ("s" .. key) and the reservation left ("r" .. key), and
-- per ledger ("l" .. tag) the requests, tokens and cost recorded so far; each op charges the
-- difference, so a repeated checkpoint charges nothing. "f" marks the hash done (a tombstone for
-- ttl_ms): a checkpoint or a retried final settle arriving later returns before touching anything
-- (a final settle also corrects token limits, which are not totals). In "c" mode a budget op
-- charges spend and shrinks the reservation by the same amount instead of releasing it, and
-- renews what is left of it (and, op 8, the call's concurrency slot) for another ttl: a call that
-- is still running keeps its headroom however long it runs.
--
-- Op 9, when present, comes first: a plain settle applies once. go-redis sends a command again on
-- a new connection when the old one broke before the reply arrived, though Redis may have run it;
-- charging spend, correcting a bucket and adding to the ledger are not idempotent. Each
-- Store.Settle call carries a token of its own (a retry resends the same one) and writes it to the
-- admission's marker for this slot, which admission left (admit.lua); a run that finds its own
-- token there returns before touching anything. A different token is a different call of the same
-- admission (a rollback after a later slot refused, then the settle of a fail-open request), which
-- must apply. Progress mode needs no marker: amounts are totals, and a final settle that finds the
-- progress hash done returns, as a late checkpoint does.
--
-- A plain settle skips what admission already did: it reads the clock only for an op that needs
-- it, and a budget whose reservation it found leaves both keys' expiry as admission set it (the
-- same instant, the period's end plus a grace the governor computes from it). A ledger hash gets
-- its expiry when a write creates a cell: an existing cell means the hash already has one, set
-- within the same hour (the ledger keeps hours, so "retention after the last write" and "after the
-- first write of the cell" differ by less than an hour in 400 days).
-- num and exact are defined ahead of this script: see numbers.lua.

local now
local function clock()
  if now == nil then
    if ARGV[1] == '' then
      local t = redis.call('TIME')
      now = (t[1] + 0) * 1000000 + (t[2] + 0)
    else
      now = (ARGV[1] + 0)
    end
  end
  return now
end
local id = ARGV[2]
-- Each op's number of arguments. Ops are told apart by their kind as a string: comparing
-- interned strings is free, converting each to a number was not.
local sizes = {['1'] = 3, ['2'] = 2, ['3'] = 0, ['4'] = 5, ['5'] = 7,
  ['6'] = 2, ['7'] = 6, ['8'] = 1, ['9'] = 2}
local prog, mode, progttl
local at -- the admission's time (µs), when its marker (op 9) still held its reply
local a = 3
local op = 0
while a <= #ARGV do
  op = op + 1
  local kind = ARGV[a]
  local nargs = sizes[kind]
  if nargs == nil then return redis.error_reply('unknown settle op ' .. tostring(kind)) end
  local p = a + 1
  local k1, k2 = KEYS[2 * op - 1], KEYS[2 * op]
  if kind == '1' then
    local limit, win, delta = (ARGV[p] + 0), (ARGV[p + 1] + 0), (ARGV[p + 2] + 0)
    local now = clock()
    local tat = ((redis.call('GET', k1) or '0') + 0)
    if tat < now then tat = now end
    tat = tat + delta * (win / limit)
    if tat < now then tat = now end
    redis.call('SET', k1, exact(tat), 'PX', num(math.floor((tat - now) / 1000) + 1000))
  elseif kind == '2' then
    local cost, actual = ARGV[p], ARGV[p + 1]
    local old = id .. ':' .. cost
    -- The entry's score is the admission's time, which the marker held (op 9); without it, ask.
    local score = at and num(at)
    if score then
      if redis.call('ZREM', k1, old) == 0 then score = nil end
    else
      score = redis.call('ZSCORE', k1, old)
      if score then redis.call('ZREM', k1, old) end
    end
    if score then
      if (actual + 0) > 0 then redis.call('ZADD', k1, score, id .. ':' .. actual) end
      redis.call('INCRBY', k2, num((actual + 0) - (cost + 0)))
    end
  elseif kind == '3' then
    redis.call('ZREM', k1, id)
  elseif kind == '4' and prog then
    local now = clock()
    local consumed, cost, actual = ARGV[p], (ARGV[p + 1] + 0), (ARGV[p + 2] + 0)
    local sf, rf = 's' .. k1, 'r' .. k1
    local v = redis.call('HMGET', prog, sf, rf)
    local delta = actual - ((v[1] or '0') + 0)
    local cur = ((v[2] or num(cost)) + 0)
    redis.call('HSET', prog, sf, num(actual))
    if consumed == '1' and cur > 0 then
      if mode == 'c' then
        local left = cost - actual
        if left < 0 then left = 0 end
        local member = id .. ':' .. num(cur)
        local score = redis.call('ZSCORE', k2, member)
        if score then
          local exp = (score + 0)
          local ttl = ((ARGV[p + 4] or '0') + 0)
          if ttl > 0 and now + ttl > exp then exp = now + ttl end
          if left < cur then
            redis.call('ZREM', k2, member)
            redis.call('HINCRBY', k1, 'res', num(left - cur))
            if left > 0 then redis.call('ZADD', k2, num(exp), id .. ':' .. num(left)) end
          elseif exp ~= (score + 0) then
            redis.call('ZADD', k2, num(exp), member)
          end
        end
        if left < cur then redis.call('HSET', prog, rf, num(left)) end
      elseif redis.call('ZREM', k2, id .. ':' .. num(cur)) == 1 then
        redis.call('HINCRBY', k1, 'res', num(-cur))
      end
    end
    if delta ~= 0 then redis.call('HINCRBY', k1, 'spent', num(delta)) end
    redis.call('PEXPIRE', k1, ARGV[p + 3])
    redis.call('PEXPIRE', k2, ARGV[p + 3])
  elseif kind == '4' then
    local consumed, cost, actual, expms = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    local found = false
    if consumed == '1' and cost ~= '0' then
      if redis.call('ZREM', k2, id .. ':' .. cost) == 1 then
        found = true
        redis.call('HINCRBY', k1, 'res', '-' .. cost)
      end
    end
    redis.call('HINCRBY', k1, 'spent', actual)
    if not found then
      -- No reservation of this admission: its keys may be new (a fail-open admission, a free
      -- request) or their expiry older than this admission; admission set both otherwise.
      redis.call('PEXPIRE', k1, expms)
      redis.call('PEXPIRE', k2, expms)
    end
  elseif kind == '5' then
    -- The first counter tells whether its cell is new: HINCRBY answers the increment itself only
    -- when the field was absent (or zero), and a hash whose cell exists already has its expiry.
    local fresh = false
    for j = p + 1, p + nargs - 1, 2 do
      local v = redis.call('HINCRBY', k1, ARGV[j], ARGV[j + 1])
      if j == p + 1 then fresh = v == (ARGV[j + 1] + 0) end
    end
    if fresh or nargs < 3 then redis.call('PEXPIRE', k1, ARGV[p]) end
  elseif kind == '8' then
    local now = clock()
    local score = redis.call('ZSCORE', k1, id)
    local exp = now + (ARGV[p] + 0)
    if score and (score + 0) > now and exp > (score + 0) then
      redis.call('ZADD', k1, num(exp), id)
      local ms = math.floor((exp - now) / 1000) + 1000
      if redis.call('PTTL', k1) < ms then redis.call('PEXPIRE', k1, num(ms)) end
    end
  elseif kind == '9' then
    local prev = redis.call('SET', k1, ARGV[p], 'GET', 'PX', ARGV[p + 1])
    if prev == ARGV[p] then return 0 end
    -- The admission's reply (packed int64s, the time last; 32 bytes or more), unless an earlier
    -- settle of this admission replaced it with its token (a formatted int64: 20 bytes at most).
    if prev and #prev >= 32 and #prev % 8 == 0 then at = struct.unpack('<i8', prev, #prev - 7) end
  elseif kind == '6' then
    prog, mode, progttl = k1, ARGV[p], ARGV[p + 1]
    if redis.call('HGET', prog, 'done') then return 0 end
  elseif kind == '7' then
    local pf = ARGV[p + 1]
    local tr, tt, tc = (ARGV[p + 2] + 0), (ARGV[p + 3] + 0), (ARGV[p + 4] + 0)
    local v = redis.call('HMGET', prog, pf .. 'r', pf .. 't', pf .. 'c')
    local dr, dt, dc = tr - ((v[1] or '0') + 0), tt - ((v[2] or '0') + 0), tc - ((v[3] or '0') + 0)
    if dr ~= 0 or dt ~= 0 or dc ~= 0 then
      redis.call('HSET', prog, pf .. 'r', num(tr), pf .. 't', num(tt), pf .. 'c', num(tc))
      for j = p + 5, p + nargs - 1 do
        redis.call('HINCRBY', k1, ARGV[j] .. 'r', num(dr))
        redis.call('HINCRBY', k1, ARGV[j] .. 't', num(dt))
        redis.call('HINCRBY', k1, ARGV[j] .. 'c', num(dc))
      end
      redis.call('PEXPIRE', k1, ARGV[p])
    end
  end
  a = p + nargs
end
if prog then
  if mode == 'f' then redis.call('HSET', prog, 'done', '1') end
  redis.call('PEXPIRE', prog, progttl)
end
return op
