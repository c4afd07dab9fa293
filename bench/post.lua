-- wrk: POST /students with a valid body, a different name each time, and the token in
-- BENCH_TOKEN; with an Idempotency-Key too when a script before this one defines `key_for`
-- (bench/post-keyed.lua).
local counter = 0
local authorization = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"first_name": "Bench%d", "last_name": "Writer", "major": "Load Testing"}', counter)
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = authorization }
  if key_for then
    headers["Idempotency-Key"] = key_for(counter)
  end
  return wrk.format("POST", "/students", headers, body)
end
