-- POST /v1/items with a new id every request: a stateful create, the
-- record kept in the sandbox's collection (bench/behaviours).
counter = 0
request = function()
    counter = counter + 1
    local body = '{"id": "bench_' .. counter .. '", "name": "Widget", "price": 19.99, "tags": ["a", "b"]}'
    return wrk.format("POST", "/v1/items", { ["Content-Type"] = "application/json" }, body)
end
