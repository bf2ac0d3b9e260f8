-- POST (to the URL wrk is given) with a new id every request: a stateful create, the
-- record kept in the sandbox's collection (bench/behaviours). Ids cycle
-- after 90,000 so a run stays under a sandbox's 100,000-record limit
-- however fast creates go: a later POST of a held id replaces that record
-- (an upsert, as no 409 is documented) on the same write path.
counter = 0
request = function()
    counter = counter + 1
    local body = '{"id": "bench_' .. (counter % 90000) .. '", "name": "Widget", "price": 19.99, "tags": ["a", "b"]}'
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
