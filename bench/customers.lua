-- POST /customers without a key: the baseline of idempotency.lua, built
-- the same way (a request function) so that only the key differs.
request = function()
  local headers = {["content-type"] = "application/json"}
  return wrk.format("POST", nil, headers, '{"name": "Bob", "email": "bob@example.com"}')
end
