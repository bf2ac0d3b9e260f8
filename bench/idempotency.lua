-- POST /customers, each request with a fresh Idempotency-Key.
counter = 0
request = function()
  counter = counter + 1
  local headers = {["content-type"] = "application/json", ["idempotency-key"] = "k-" .. counter .. "-" .. math.random(1, 1000000000)}
  return wrk.format("POST", nil, headers, '{"name": "Bob", "email": "bob@example.com"}')
end
