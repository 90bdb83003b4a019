-- wrk load for bench_ingest.py: each request POSTs 100 Zipkin v2 spans (10 traces of 10: a SERVER
-- root and 9 CLIENT children calling other services) to /api/v2/spans, with ids never sent before.
--
--     wrk -t N -c N -d 600s --timeout 60s -s ingest_load.lua URL -- RUN_PREFIX REQUESTS_PER_THREAD DONE_DIR
--
-- One connection per thread, so that response() answers the request() just before it: a thread
-- knows the trace ids of what was answered, and stops after exactly REQUESTS_PER_THREAD, creating
-- DONE_DIR/<thread number> (wrk itself runs for its whole -d: the benchmark interrupts it once
-- every thread is done). A trace id is RUN_PREFIX (8 hex) .. thread number (4 hex) .. trace
-- counter (20 hex); done() prints each thread's answered and failed (not 202) requests and the
-- last trace id answered.

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local SERVICES = {}
for i = 0, 19 do SERVICES[i] = "service-" .. i end

local run_prefix, quota, done_dir, thread_number
local traces, answered, failed = 0, 0, 0

function init(args)
  run_prefix = args[1]
  quota = tonumber(args[2])
  done_dir = args[3]
  wrk.method = "POST"
  wrk.path = "/api/v2/spans"
  wrk.headers["Content-Type"] = "application/json"
end

local function trace_id(counter)
  return string.format("%s%04x%020x", run_prefix, thread_number, counter)
end

function request()
  thread_number = thread_number or tonumber(wrk.thread:get("thread_number"))
  local spans = {}
  local now_us = os.time() * 1000000
  for _ = 1, 10 do
    traces = traces + 1
    local trace = trace_id(traces)
    local root = string.sub(trace, 17, 32)
    local service = SERVICES[traces % 20]
    for index = 0, 9 do
      local span = string.format(
        '{"traceId":"%s","id":"%s","kind":"%s","name":"get /api/%d","timestamp":%d,"duration":%d,'
          .. '"localEndpoint":{"serviceName":"%s","ipv4":"10.0.0.1","port":8080},'
          .. '"tags":{"http.method":"GET","http.status_code":"200"}',
        trace, index == 0 and root or string.format("%s%02x", string.sub(trace, 19, 32), index),
        index == 0 and "SERVER" or "CLIENT", index % 5, now_us + traces * 10 + index, 1000 + index * 37, service)
      if index > 0 then
        span = span .. string.format(',"parentId":"%s","remoteEndpoint":{"serviceName":"%s"}',
          root, SERVICES[(traces + index) % 20])
      end
      spans[#spans + 1] = span .. "}"
    end
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(spans, ",") .. "]")
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 202 then failed = failed + 1 end
  wrk.thread:set("answered", answered)
  wrk.thread:set("failed", failed)
  wrk.thread:set("last_trace", trace_id(traces))
  if answered >= quota then
    wrk.thread:stop()
    io.open(done_dir .. "/" .. thread_number, "w"):close()
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("thread=%d answered=%d failed=%d last_trace=%s\n", thread:get("thread_number"),
      thread:get("answered") or 0, thread:get("failed") or 0, thread:get("last_trace") or ""))
  end
end
