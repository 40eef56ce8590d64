-- wrk script for the signup benchmark: POST a new address per request, count statuses.
-- Usage: wrk ... -s bench/signup.lua URL -- PREFIX
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "bench"
  counter = 0
  statuses = {}
end

function request()
  counter = counter + 1
  local body = "email=" .. prefix .. "-" .. id .. "-" .. counter .. "%40example.com"
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d %d\n", status, count))
  end
end
