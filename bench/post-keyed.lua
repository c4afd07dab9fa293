-- wrk: POST /students as bench/post.lua does, each request with an Idempotency-Key of its own
-- (a retry would reuse one; none is retried here), so every request is a first write with a key.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local authorization = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"first_name": "Bench%d", "last_name": "Writer", "major": "Load Testing"}', counter)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = authorization,
    ["Idempotency-Key"] = string.format("bench-%d-%d-%d", os.time(), thread_id, counter),
  }
  return wrk.format("POST", "/students", headers, body)
end
