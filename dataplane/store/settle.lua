-- settle.lua: finish an admission. Mirrors Memory.Settle.
--
-- KEYS: two per op. ARGV[1] = now in µs or "" (Redis TIME), ARGV[2] = admission id, then per op:
-- kind, nargs, args...
--   1 bucket correct:  limit, window_us, delta_units          (k1 = TAT)
--   2 sliding correct: cost, actual                            (k1 = log zset, k2 = sum)
--   3 release slot:    (none)                                  (k1 = holders zset)
--   4 budget:          consumed, cost, actual, expire_ms       (k1 = hash, k2 = reservations)
--   5 ledger add:      expire_ms, field, incr, field, incr...  (k1 = hash)
local function num(x) return string.format('%.0f', x) end
local function exact(x) return string.format('%.17g', x) end

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local id = ARGV[2]
local a = 3
local op = 0
while a <= #ARGV do
  op = op + 1
  local kind, nargs = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local p = a + 2
  local k1, k2 = KEYS[2 * op - 1], KEYS[2 * op]
  if kind == 1 then
    local limit, win, delta = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
    local tat = tonumber(redis.call('GET', k1) or '0')
    if tat < now then tat = now end
    tat = tat + delta * (win / limit)
    if tat < now then tat = now end
    redis.call('SET', k1, exact(tat), 'PX', num(math.floor((tat - now) / 1000) + 1000))
  elseif kind == 2 then
    local cost, actual = ARGV[p], ARGV[p + 1]
    local old = id .. ':' .. cost
    local score = redis.call('ZSCORE', k1, old)
    if score then
      redis.call('ZREM', k1, old)
      if tonumber(actual) > 0 then redis.call('ZADD', k1, score, id .. ':' .. actual) end
      redis.call('INCRBY', k2, num(tonumber(actual) - tonumber(cost)))
    end
  elseif kind == 3 then
    redis.call('ZREM', k1, id)
  elseif kind == 4 then
    local consumed, cost, actual, expms = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    if consumed == '1' and tonumber(cost) > 0 then
      if redis.call('ZREM', k2, id .. ':' .. cost) == 1 then
        redis.call('HINCRBY', k1, 'res', '-' .. cost)
      end
    end
    redis.call('HINCRBY', k1, 'spent', actual)
    redis.call('PEXPIRE', k1, expms)
    redis.call('PEXPIRE', k2, expms)
  elseif kind == 5 then
    for j = p + 1, p + nargs - 1, 2 do
      redis.call('HINCRBY', k1, ARGV[j], ARGV[j + 1])
    end
    redis.call('PEXPIRE', k1, ARGV[p])
  else
    return redis.error_reply('unknown settle op ' .. tostring(kind))
  end
  a = p + nargs
end
return op
