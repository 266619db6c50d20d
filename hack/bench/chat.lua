-- wrk script of hack/bench: POSTs /v1/chat/completions bodies identical in shape to the Go load
-- generator's (load.go, workload.body): a fixed system message, a user message made unique by a
-- per-cell nonce, the thread and a counter (so the gateway's cache always misses), users spread
-- over a population. Arguments after `--`: model key org users nonce system filler.
-- done() prints one line for the harness:
--   BENCH requests duration_us p50_us p90_us p99_us status_errors socket_errors

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  model, key, org, users, nonce, system, filler = args[1], args[2], args[3], tonumber(args[4]), args[5], args[6], args[7]
  counter = 0
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["X-AI-Org"] = org,
  }
  prefix = '{"model":"' .. model .. '","user":"bench-user-'
  middle = '","stream":false,"messages":[{"role":"system","content":"' .. system .. '"},{"role":"user","content":"Request ' .. nonce .. '-' .. tid .. '-'
  suffix = ': ' .. filler .. '"}]}'
end

function request()
  counter = counter + 1
  local body = prefix .. ((counter * 7 + tid) % users) .. middle .. counter .. suffix
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
