-- POST /customers without a key (the baseline of idempotency.lua).
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"name": "Bob", "email": "bob@example.com"}'
