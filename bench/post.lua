-- wrk: POST /students with a valid body, a different name each time.
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"first_name": "Bench%d", "last_name": "Writer", "major": "Load Testing"}', counter)
  return wrk.format("POST", "/students", { ["Content-Type"] = "application/json" }, body)
end
