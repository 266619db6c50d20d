-- admit.lua: evaluate every check, then consume them all only when no non-shadow check refuses.
-- Mirrors algo.go/memory.go operation by operation (float64 microseconds).
--
-- KEYS: two per check (k1, k2), then the admission's marker (see "Once" below). ARGV[1] = now in
-- µs, or "" to use Redis TIME (production; the argument exists so tests can drive time with a fake
-- clock). ARGV[2] = admission id. ARGV[3] = the marker's TTL in ms. Then per check its code (the
-- kind, plus 4 for a shadow check) and the values its kind uses:
--   kind 1 token bucket:   limit, window_us, burst, cost; k1 = TAT (string, µs)
--   kind 2 sliding window: limit, window_us, cost; k1 = zset "id:cost" scored by time, k2 = sum
--                          of costs
--   kind 3 concurrency:    limit, ttl_us; k1 = zset holder id scored by expiry
--   kind 4 budget:         limit, cost, ttl_us, expire_ms; k1 = hash {spent, res, x, e}, k2 = zset
--                          "id:amount" scored by expiry, and "~" scored +inf; x is the expiry (ms
--                          since 1970) last given to both keys, e a time (µs) before which no
--                          reservation in k2 expires
-- (Only what a kind uses: every argument costs the server its string and its conversion.)
--
-- e spares an admission the look at k2's earliest reservation: while now < e nothing can have
-- expired. It may be earlier than the truth (a settle removes reservations without touching it),
-- never later: a reservation that would expire before it lowers it. Once now passes it, the
-- admission looks (ZRANGE) and stores the earliest expiry left. "~" keeps k2 from vanishing when
-- its last reservation goes, so it keeps the expiry it was given; the ZADD of a reservation adds
-- it again and so tells (it adds two members) when k2 is new and needs its expiry.
--
-- A budget's keys expire expire_ms after the last admission, give or take a minute: their expiry
-- is set again only when it would move by more than that (tracked in x), or when k2 is new. The
-- governor computes expire_ms from the period's end, so for it the expiry is the same instant at
-- every admission of a period and is set once per period and key, not twice per request.
--
-- Returns allowed_all, then per check allowed and remaining, then retry_ns and reset_ns (token
-- bucket, sliding window) or spent and reserved (budget), then now (µs), packed as little-endian
-- int64s in one string (the bytes the marker keeps). What the caller can tell without it is left
-- out: a check is consumed when it and allowed_all are 1, a refused concurrency limit says retry
-- in a second, and nothing else has a reset, a retry or a spend. Every value costs the server
-- about as much to pack as to send as an integer (half a microsecond): the fewer the better.
--
-- Every redis.call costs the server about a microsecond and every number it formats or parses
-- about half of one, so the script reads each argument once, passes strings it already has
-- (ARGV values, the formatted time) instead of formatting numbers again, and skips reads whose
-- answer an earlier read already gave.
-- num and exact are defined ahead of this script: see numbers.lua.
local function amount(m) return tonumber(string.match(m, ':(%-?%d+)$')) end
-- hint formats e: a time in µs, or (no reservation) a number past any time.
local function hint(e)
  if e >= 1e300 then return '1e300' end
  return num(e)
end
-- pack returns the reply as the little-endian int64s it holds (struct.pack converts at most a few
-- dozen values per call: unpack's results go on the Lua stack).
local function pack(t)
  if #t <= 64 then return struct.pack('<' .. string.rep('i8', #t), unpack(t)) end
  local parts = {}
  for j = 1, #t, 64 do
    local k = math.min(j + 63, #t)
    parts[#parts + 1] = struct.pack('<' .. string.rep('i8', k - j + 1), unpack(t, j, k))
  end
  return table.concat(parts)
end

local now, snow
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = (t[1] + 0) * 1000000 + (t[2] + 0)
  snow = num(now)
else
  now = (ARGV[1] + 0)
  snow = ARGV[1]
end
local id = ARGV[2]
local n = (#KEYS - 1) / 2
-- Per check: what phase 2 needs (parsed once; ps[i] is the index of its first value). What phase 1
-- decided goes straight into the reply (out); every table costs the script its allocation and
-- growth.
local kinds, wins, costs, ps = {}, {}, {}, {}
local out = {0}
local m = 1 -- out's last value
local oks = {} -- per check: allowed
local st = {}
-- dirty[i]: a sliding window's purge changed its sum, which must be stored even if not consumed.
local dirty = {}
-- Budgets: x and e (see above), whether k1 exists, and whether e must be stored.
local xs, es, has, ewrite = {}, {}, {}, {}
local all = 1

local codes = {['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4,
  ['5'] = 5, ['6'] = 6, ['7'] = 7, ['8'] = 8}
local a = 4 -- the code of check i
for i = 1, n do
  local kind = codes[ARGV[a]] or 0 -- a table lookup, not a conversion
  local shadow = kind > 4
  if shadow then kind = kind - 4 end
  local p = a + 1
  local limit, win, cost = (ARGV[p] + 0), 0, 0
  if kind == 1 then
    win, cost, a = (ARGV[p + 1] + 0), (ARGV[p + 3] + 0), p + 4
  elseif kind == 2 then
    win, cost, a = (ARGV[p + 1] + 0), (ARGV[p + 2] + 0), p + 3
  elseif kind == 3 then
    a = p + 2
  elseif kind == 4 then
    cost, a = (ARGV[p + 1] + 0), p + 4
  end
  kinds[i], wins[i], costs[i], ps[i] = kind, win, cost, p
  local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
  local allowed, rem, retry, reset, spent, reserved = 0, 0, 0, 0, 0, 0
  if kind == 1 then
    local tat = ((redis.call('GET', k1) or '0') + 0)
    local t = win / limit
    local b = (ARGV[p + 2] + 0)
    if b <= 0 then b = limit end
    local tau = b * t
    local base = math.max(tat, now)
    local newtat = base + cost * t
    local allowAt = newtat - tau
    local r
    if allowAt - now > 1e-3 then
      retry = allowAt - now
      reset = base - now
      if cost > b then retry = win end
      r = math.floor((now - (base - tau)) / t + 1e-9)
    else
      allowed = 1
      reset = newtat - now
      r = math.floor((now - allowAt) / t + 1e-9)
      st[i] = newtat
    end
    if r < 0 then r = 0 end
    if r > b then r = b end
    rem = r
  elseif kind == 2 then
    local cutoff = now - win
    local sum = ((redis.call('GET', k2) or '0') + 0)
    -- The four oldest entries: in a busy window the few that left it since the last request are
    -- among them, so the purge needs no listing of its own, and they also give the oldest entry
    -- that stays (for Reset) and whether any stays at all. Scores and cutoff are whole µs.
    local head = redis.call('ZRANGE', k1, '0', '3', 'WITHSCORES')
    local oldest -- score of the oldest entry still in the window; nil when none is left
    if #head > 0 and (head[2] + 0) <= cutoff then
      if #head == 8 and (head[8] + 0) <= cutoff then
        -- All four left, and maybe more: list every one that did.
        local old = redis.call('ZRANGEBYSCORE', k1, '-inf', num(cutoff))
        for _, m in ipairs(old) do sum = sum - amount(m) end
        redis.call('ZREMRANGEBYSCORE', k1, '-inf', num(cutoff))
        local o = redis.call('ZRANGE', k1, '0', '0', 'WITHSCORES')
        if #o > 0 then oldest = (o[2] + 0) end
      else
        local j = 1
        while j < #head and (head[j + 1] + 0) <= cutoff do
          sum = sum - amount(head[j])
          j = j + 2
        end
        redis.call('ZREMRANGEBYSCORE', k1, '-inf', num(cutoff))
        if j < #head then oldest = (head[j + 1] + 0) end
      end
      if oldest == nil then sum = 0 end -- an empty log: no drift survives it
      dirty[i] = true
    elseif #head > 0 then
      oldest = (head[2] + 0)
    end
    if sum + cost <= limit then
      allowed = 1
      rem = limit - sum - cost
      if oldest then reset = oldest + win - now else reset = win end
    else
      rem = limit - sum
      if rem < 0 then rem = 0 end
      retry = win
      if cost <= limit then
        local need = sum + cost - limit
        local freed = 0
        local es = redis.call('ZRANGE', k1, '0', num(need - 1), 'WITHSCORES')
        for j = 1, #es, 2 do
          freed = freed + amount(es[j])
          if freed >= need then
            retry = (es[j + 1] + 0) + win - now
            break
          end
        end
      end
      reset = retry
      if oldest then reset = oldest + win - now end
    end
    st[i] = sum
  elseif kind == 3 then
    redis.call('ZREMRANGEBYSCORE', k1, '-inf', snow)
    local held = redis.call('ZCARD', k1)
    if held < limit then
      allowed = 1
      rem = limit - held - 1
    else
      retry = 1000000
    end
  elseif kind == 4 then
    local v = redis.call('HMGET', k1, 'spent', 'res', 'x', 'e')
    spent = ((v[1] or '0') + 0)
    reserved = ((v[2] or '0') + 0)
    xs[i] = ((v[3] or '0') + 0)
    has[i] = v[1] or v[2] or v[3]
    local e = ((v[4] or '0') + 0)
    if e <= now then
      -- A reservation may have expired (or k1 has no e yet): the one that expires first says.
      local first = redis.call('ZRANGE', k2, '0', '0', 'WITHSCORES')
      if #first > 0 and (first[2] + 0) <= now then
        local exp = redis.call('ZRANGEBYSCORE', k2, '-inf', snow)
        local freed = 0
        for _, m in ipairs(exp) do freed = freed + amount(m) end
        redis.call('ZREMRANGEBYSCORE', k2, '-inf', snow)
        redis.call('HINCRBY', k1, 'res', num(-freed))
        reserved = reserved - freed
        first = redis.call('ZRANGE', k2, '0', '0', 'WITHSCORES')
      end
      e = math.huge -- no reservation (k2 is absent, or holds "~" alone)
      if #first > 0 and first[1] ~= '~' then e = (first[2] + 0) end
      ewrite[i] = true
    end
    es[i] = e
    local c = cost
    if c < 1 then c = 1 end
    if spent + reserved + c <= limit then
      allowed = 1
      rem = limit - spent - reserved - cost
    else
      rem = limit - spent - reserved
      if rem < 0 then rem = 0 end
    end
  else
    return redis.error_reply('unknown check kind ' .. tostring(kind))
  end
  if allowed == 0 and not shadow then all = 0 end
  oks[i] = allowed
  out[m + 1], out[m + 2] = allowed, rem
  if kind <= 2 then
    out[m + 3], out[m + 4] = math.floor(retry * 1000), math.floor(reset * 1000)
    m = m + 4
  elseif kind == 4 then
    out[m + 3], out[m + 4] = spent, reserved
    m = m + 4
  else
    m = m + 2
  end
end

out[1] = all
-- The time last: a settle finds it in the marker, and moves a sliding window's entry (scored by
-- it) without asking for its score.
out[m + 1] = now

-- Once: go-redis sends a command again on a new connection when the old one broke (EOF, reset,
-- read timeout) before the reply arrived, though Redis may have run it already; a first attempt
-- stuck behind a busy server may even run after its retry. Either way the admission must be
-- consumed once and answered as it was decided. So an admission that consumes leaves its reply
-- in the marker (SET NX: the one call of the usual path), and a run that finds a marker consumes
-- nothing and answers what the marker holds. A refusal consumed nothing, so leaves no marker;
-- a refused run still looks for one (GET), since the first run's consumption may be exactly
-- what refuses it. Settle replaces the reply with its own token (settle.lua, op 9): an admission
-- that arrives after its settle finds a marker that is no reply and consumes nothing.
local mk = KEYS[2 * n + 1]
local prev
local reply = pack(out)
if all == 1 then
  if not redis.call('SET', mk, reply, 'NX', 'PX', ARGV[3]) then prev = redis.call('GET', mk) end
else
  prev = redis.call('GET', mk)
end
if prev then
  -- A purge above changed a sliding window's log: its sum must follow, as for a refusal.
  for i = 1, n do
    if dirty[i] then
      redis.call('SET', KEYS[2 * i], num(st[i]), 'PX', num(math.floor(wins[i] / 1000) + 1000))
    end
  end
  if #prev == #reply then return prev end
  -- A settled admission's stale attempt: nobody reads the reply; say nothing was consumed.
  out[1] = 0
  return pack(out)
end

for i = 1, n do
  local kind = kinds[i]
  local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
  if all == 1 and oks[i] == 1 then
    local p = ps[i]
    if kind == 1 then
      redis.call('SET', k1, exact(st[i]), 'PX', num(math.floor((st[i] - now) / 1000) + 1000))
    elseif kind == 2 then
      local px = num(math.floor(wins[i] / 1000) + 1000)
      redis.call('ZADD', k1, snow, id .. ':' .. ARGV[p + 2])
      redis.call('SET', k2, num(st[i] + costs[i]), 'PX', px)
      redis.call('PEXPIRE', k1, px)
    elseif kind == 3 then
      local ttl = (ARGV[p + 1] + 0)
      redis.call('ZADD', k1, num(now + ttl), id)
      redis.call('PEXPIRE', k1, num(math.floor(ttl / 1000) + 1000))
    elseif kind == 4 then
      local fresh = false -- k2 is new (or was written before "~"): it needs its expiry
      if costs[i] > 0 then
        local exp = now + (ARGV[p + 2] + 0)
        fresh = redis.call('ZADD', k2, num(exp), id .. ':' .. ARGV[p + 1], 'inf', '~') == 2
        redis.call('HINCRBY', k1, 'res', ARGV[p + 1])
        if exp < es[i] then es[i], ewrite[i] = exp, true end
      end
      local at = math.floor(now / 1000) + (ARGV[p + 3] + 0)
      if at > xs[i] + 60000 or fresh then
        -- HSET before PEXPIRE: it may create k1.
        if ewrite[i] then
          redis.call('HSET', k1, 'x', num(at), 'e', hint(es[i]))
        else
          redis.call('HSET', k1, 'x', num(at))
        end
        redis.call('PEXPIRE', k1, ARGV[p + 3])
        redis.call('PEXPIRE', k2, ARGV[p + 3])
      elseif ewrite[i] then
        redis.call('HSET', k1, 'e', hint(es[i]))
      end
    end
  elseif kinds[i] == 4 and ewrite[i] and has[i] then
    -- Not consumed, but the look at k2 found its earliest expiry: keep it, so that the next
    -- admission need not look again. Only into an existing k1, which has its expiry.
    redis.call('HSET', k1, 'e', hint(es[i]))
  elseif dirty[i] then
    redis.call('SET', k2, num(st[i]), 'PX', num(math.floor(wins[i] / 1000) + 1000))
  end
end
return reply
