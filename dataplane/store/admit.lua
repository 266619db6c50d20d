-- admit.lua: evaluate every check, then consume them all only when no non-shadow check refuses.
-- Mirrors algo.go/memory.go operation by operation (float64 microseconds).
--
-- KEYS: two per check (k1, k2). ARGV[1] = now in µs, or "" to use Redis TIME (production; the
-- argument exists so tests can drive time with a fake clock). ARGV[2] = admission id. Then eight
-- values per check: kind, limit, window_us, burst, cost, shadow (0/1), ttl_us, expire_ms.
--   kind 1 token bucket:   k1 = TAT (string, µs)
--   kind 2 sliding window: k1 = zset "id:cost" scored by time, k2 = sum of costs
--   kind 3 concurrency:    k1 = zset holder id scored by expiry
--   kind 4 budget:         k1 = hash {spent, res}, k2 = zset "id:amount" scored by expiry
-- Returns {allowed_all, then per check: allowed, consumed, remaining, retry_ns, reset_ns, spent, reserved}.
local function num(x) return string.format('%.0f', x) end
local function exact(x) return string.format('%.17g', x) end
local function amount(m) return tonumber(string.match(m, ':(%-?%d+)$')) end

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local id = ARGV[2]
local n = (#ARGV - 2) / 8
local res = {}
local st = {}
local all = 1

for i = 1, n do
  local a = 2 + (i - 1) * 8
  local kind, limit, win = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local burst, cost, shadow = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6] == '1'
  local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
  local allowed, rem, retry, reset, spent, reserved = 0, 0, 0, 0, 0, 0
  if kind == 1 then
    local tat = tonumber(redis.call('GET', k1) or '0')
    local t = win / limit
    local b = burst
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
    local sum = tonumber(redis.call('GET', k2) or '0')
    local old = redis.call('ZRANGEBYSCORE', k1, '-inf', num(cutoff))
    if #old > 0 then
      for _, m in ipairs(old) do sum = sum - amount(m) end
      redis.call('ZREMRANGEBYSCORE', k1, '-inf', num(cutoff))
      if redis.call('ZCARD', k1) == 0 then sum = 0 end
      redis.call('SET', k2, num(sum), 'PX', num(math.floor(win / 1000) + 1000))
    end
    local oldest = redis.call('ZRANGE', k1, 0, 0, 'WITHSCORES')
    if sum + cost <= limit then
      allowed = 1
      rem = limit - sum - cost
      if #oldest > 0 then reset = tonumber(oldest[2]) + win - now else reset = win end
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
            retry = tonumber(es[j + 1]) + win - now
            break
          end
        end
      end
      reset = retry
      if #oldest > 0 then reset = tonumber(oldest[2]) + win - now end
    end
    st[i] = sum
  elseif kind == 3 then
    redis.call('ZREMRANGEBYSCORE', k1, '-inf', num(now))
    local held = redis.call('ZCARD', k1)
    if held < limit then
      allowed = 1
      rem = limit - held - 1
    else
      retry = 1000000
    end
  elseif kind == 4 then
    local exp = redis.call('ZRANGEBYSCORE', k2, '-inf', num(now))
    if #exp > 0 then
      local freed = 0
      for _, m in ipairs(exp) do freed = freed + amount(m) end
      redis.call('ZREMRANGEBYSCORE', k2, '-inf', num(now))
      redis.call('HINCRBY', k1, 'res', num(-freed))
    end
    local v = redis.call('HMGET', k1, 'spent', 'res')
    spent = tonumber(v[1] or '0')
    reserved = tonumber(v[2] or '0')
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
  res[i] = {allowed, rem, retry, reset, spent, reserved}
end

if all == 1 then
  for i = 1, n do
    if res[i][1] == 1 then
      local a = 2 + (i - 1) * 8
      local kind, win, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 5])
      local ttl, expms = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
      local k1, k2 = KEYS[2 * i - 1], KEYS[2 * i]
      if kind == 1 then
        redis.call('SET', k1, exact(st[i]), 'PX', num(math.floor((st[i] - now) / 1000) + 1000))
      elseif kind == 2 then
        redis.call('ZADD', k1, num(now), id .. ':' .. num(cost))
        redis.call('SET', k2, num(st[i] + cost), 'PX', num(math.floor(win / 1000) + 1000))
        redis.call('PEXPIRE', k1, num(math.floor(win / 1000) + 1000))
      elseif kind == 3 then
        redis.call('ZADD', k1, num(now + ttl), id)
        redis.call('PEXPIRE', k1, num(math.floor(ttl / 1000) + 1000))
      elseif kind == 4 then
        if cost > 0 then
          redis.call('ZADD', k2, num(now + ttl), id .. ':' .. num(cost))
          redis.call('HINCRBY', k1, 'res', num(cost))
        end
        redis.call('PEXPIRE', k1, num(expms))
        redis.call('PEXPIRE', k2, num(expms))
      end
      res[i][7] = 1
    end
  end
end

local out = {all}
for i = 1, n do
  local r = res[i]
  local consumed = 0
  if r[7] == 1 then consumed = 1 end
  out[#out + 1] = r[1]
  out[#out + 1] = consumed
  out[#out + 1] = r[2]
  out[#out + 1] = math.floor(r[3] * 1000)
  out[#out + 1] = math.floor(r[4] * 1000)
  out[#out + 1] = r[5]
  out[#out + 1] = r[6]
end
return out
