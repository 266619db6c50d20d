-- admit.lua: evaluate every check, then consume them all only when no non-shadow check refuses.
-- Mirrors algo.go/memory.go operation by operation (float64 microseconds).
--
-- KEYS: two per check (k1, k2). ARGV[1] = now in µs, or "" to use Redis TIME (production; the
-- argument exists so tests can drive time with a fake clock). ARGV[2] = admission id. Then eight
-- values per check: kind, limit, window_us, burst, cost, shadow (0/1), ttl_us, expire_ms.
--   kind 1 token bucket:   k1 = TAT (string, µs)
--   kind 2 sliding window: k1 = zset "id:cost" scored by time, k2 = sum of costs
--   kind 3 concurrency:    k1 = zset holder id scored by expiry
--   kind 4 budget:         k1 = hash {spent, res, x}, k2 = zset "id:amount" scored by expiry;
--                          x is the expiry (ms since 1970) last given to both keys
--
-- A budget's keys expire expire_ms after the last admission, give or take a minute: their expiry
-- is set again only when it would move by more than that (tracked in x), or when k2 is new. The
-- governor computes expire_ms from the period's end, so for it the expiry is the same instant at
-- every admission of a period and is set once per period and key, not twice per request.
-- Returns {allowed_all, then per check: allowed, consumed, remaining, retry_ns, reset_ns, spent, reserved}.
-- Every redis.call costs the server about a microsecond and every number it formats or parses
-- about half of one, so the script reads each argument once, passes strings it already has
-- (ARGV values, the formatted time) instead of formatting numbers again, and skips reads whose
-- answer an earlier read already gave.
-- num and exact are defined ahead of this script: see numbers.lua.
local function amount(m) return tonumber(string.match(m, ':(%-?%d+)$')) end

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
local n = (#ARGV - 2) / 8
-- Per check: what phase 2 needs (parsed once). What phase 1 decided goes straight into the reply
-- (out), which phase 2 reads back; every table costs the script its allocation and growth.
local kinds, wins, costs = {}, {}, {}
local out = {0}
local st = {}
-- dirty[i]: a sliding window's purge changed its sum, which must be stored even if not consumed.
local dirty = {}
-- Budgets: x (see above) and whether k2 held a live reservation (then it has its expiry).
local xs, live = {}, {}
local all = 1

for i = 1, n do
  local a = 2 + (i - 1) * 8
  local kind, limit, win = (ARGV[a + 1] + 0), (ARGV[a + 2] + 0), (ARGV[a + 3] + 0)
  local cost, shadow = (ARGV[a + 5] + 0), ARGV[a + 6] == '1'
  kinds[i], wins[i], costs[i] = kind, win, cost
  local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
  local allowed, rem, retry, reset, spent, reserved = 0, 0, 0, 0, 0, 0
  if kind == 1 then
    local tat = ((redis.call('GET', k1) or '0') + 0)
    local t = win / limit
    local b = (ARGV[a + 4] + 0)
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
    -- The reservation that expires first: none means k2 does not exist; an expired one means
    -- there are reservations to purge.
    local first = redis.call('ZRANGE', k2, '0', '0', 'WITHSCORES')
    live[i] = #first > 0
    if #first > 0 and (first[2] + 0) <= now then
      local exp = redis.call('ZRANGEBYSCORE', k2, '-inf', snow)
      local freed = 0
      for _, m in ipairs(exp) do freed = freed + amount(m) end
      redis.call('ZREMRANGEBYSCORE', k2, '-inf', snow)
      redis.call('HINCRBY', k1, 'res', num(-freed))
      live[i] = false -- perhaps emptied, hence deleted
    end
    local v = redis.call('HMGET', k1, 'spent', 'res', 'x')
    spent = ((v[1] or '0') + 0)
    reserved = ((v[2] or '0') + 0)
    xs[i] = ((v[3] or '0') + 0)
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
  local o = 7 * i - 5 -- out[o]: allowed, then consumed (set by phase 2), remaining, retry, ...
  out[o], out[o + 1], out[o + 2], out[o + 3] = allowed, 0, rem, math.floor(retry * 1000)
  out[o + 4], out[o + 5], out[o + 6] = math.floor(reset * 1000), spent, reserved
end

out[1] = all
for i = 1, n do
  local kind = kinds[i]
  local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
  if all == 1 and out[7 * i - 5] == 1 then
    out[7 * i - 4] = 1
    local a = 2 + (i - 1) * 8
    if kind == 1 then
      redis.call('SET', k1, exact(st[i]), 'PX', num(math.floor((st[i] - now) / 1000) + 1000))
    elseif kind == 2 then
      local px = num(math.floor(wins[i] / 1000) + 1000)
      redis.call('ZADD', k1, snow, id .. ':' .. ARGV[a + 5])
      redis.call('SET', k2, num(st[i] + costs[i]), 'PX', px)
      redis.call('PEXPIRE', k1, px)
    elseif kind == 3 then
      local ttl = (ARGV[a + 7] + 0)
      redis.call('ZADD', k1, num(now + ttl), id)
      redis.call('PEXPIRE', k1, num(math.floor(ttl / 1000) + 1000))
    elseif kind == 4 then
      if costs[i] > 0 then
        redis.call('ZADD', k2, num(now + (ARGV[a + 7] + 0)), id .. ':' .. ARGV[a + 5])
        redis.call('HINCRBY', k1, 'res', ARGV[a + 5])
      end
      local at = math.floor(now / 1000) + (ARGV[a + 8] + 0)
      if at > xs[i] + 60000 then
        redis.call('HSET', k1, 'x', num(at)) -- before PEXPIRE: it may create k1
        redis.call('PEXPIRE', k1, ARGV[a + 8])
        redis.call('PEXPIRE', k2, ARGV[a + 8])
      elseif costs[i] > 0 and not live[i] then
        redis.call('PEXPIRE', k2, ARGV[a + 8]) -- a new k2
      end
    end
  elseif dirty[i] then
    redis.call('SET', k2, num(st[i]), 'PX', num(math.floor(wins[i] / 1000) + 1000))
  end
end
return out
