-- GET /v1/items/{id} with a different id on every request: every answer is
-- synthesized anew (no memoized value can serve it).
counter = 0
request = function()
    counter = counter + 1
    return wrk.format("GET", "/v1/items/" .. counter)
end
