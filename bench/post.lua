wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "Widget", "price": 1999, "currency": "usd", "tags": ["a", "b"]}'
