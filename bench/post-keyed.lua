-- wrk, before bench/post.lua: each POST with an Idempotency-Key of its own (a retry would reuse
-- one; none is retried here), so every request is a first write with a key. Keys differ across
-- wrk's threads and runs.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local started = os.time()
key_for = function(n)
  return string.format("bench-%d-%d-%d", started, thread_id, n)
end
