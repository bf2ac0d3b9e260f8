"""Code sessions against a running `sbx serve`: session create latency,
`print("hi")` through the API beside `/usr/bin/python3 -c` on the host
(the ceiling) — in a warm session (a run 0.2 s after the last, its warm
jail ready) and back to back (the next jail still starting) — a function
behaviour's round trip (examples/functions) beside the same request to the
same spec without functions, and the data plane's rate while 50 sessions
each spin a CPU.

Usage: sessions.py URL TOKEN SANDBOX_BASE_URL SANDBOX_KEY [RUNS]
Prints one JSON object with the figures (milliseconds).
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from urllib.parse import urlparse


def percentile(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 2)


def client(url, token):
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body=None):
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    return call


def timed(action):
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def data_plane_rate(sandbox, seconds):
    """Requests per second one connection gets from the demo sandbox."""
    base, key = sandbox
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    done, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        conn.request("GET", parsed.path + "/accounts/acct_demo_gold", headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        done += 1
    return done / seconds


def orders_sandbox(call, name, with_functions):
    """A sandbox of examples/functions, with its functions or without."""
    folder = "examples/functions"
    body = {"name": name, "spec": open(f"{folder}/openapi.yaml").read()}
    if with_functions:
        body["functions"] = {f: open(f"{folder}/functions/{f}").read()
                             for f in os.listdir(f"{folder}/functions")}
        body["env"] = {"currency": "EUR", "max_quantity": 10}
    status, project = call("POST", "/api/v1/projects", body)
    assert status == 201, project
    status, sandbox = call("POST", "/api/v1/sandboxes", {"project": name, "auth": "none"})
    assert status == 201, sandbox
    return sandbox["base_url"]


def request_times(base, method, path, body, runs):
    """Each request's milliseconds, on one kept-alive connection."""
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    payload = json.dumps(body) if body is not None else None
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.request(method, parsed.path + path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 201), response.status
        times.append((time.perf_counter() - started) * 1000)
    return times


def function_figures(call, runs):
    """A function's round trip over the same request answered by the spec."""
    with_functions = orders_sandbox(call, "orders-functions", True)
    plain = orders_sandbox(call, "orders-plain", False)
    order = {"items": [{"sku": "tea", "quantity": 2}]}
    cold = request_times(with_functions, "POST", "/orders", order, 1)[0]
    figures = {"function_cold_ms": round(cold, 2)}
    for label, method, path, body in [("python", "POST", "/orders", order),
                                      ("node", "GET", "/quotes/cake?quantity=3", None)]:
        request_times(with_functions, method, path, body, 5)  # the worker started
        through = request_times(with_functions, method, path, body, runs * 10)
        spec = request_times(plain, method, path, body, runs * 10)
        figures[f"function_{label}_p50_ms"] = percentile(through, 0.5)
        figures[f"function_{label}_p99_ms"] = percentile(through, 0.99)
        figures[f"without_function_{label}_p50_ms"] = percentile(spec, 0.5)
        figures[f"function_{label}_overhead_p50_ms"] = round(
            statistics.median(through) - statistics.median(spec), 2)
    return figures


def main():
    url, token, base, key = sys.argv[1:5]
    sandbox_url = (base, key)
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 30
    call = client(url, token)

    # The interpreter the jail runs, started straight from the host.
    host = [timed(lambda: subprocess.run(["/usr/bin/python3", "-c", 'print("hi")'], capture_output=True))[0]
            for _ in range(runs)]
    creates, prints, back_to_back, ids = [], [], [], []
    for _ in range(runs):
        ms, (status, session) = timed(lambda: call("POST", "/api/v1/sessions", {"template": "python"}))
        assert status == 201, session
        creates.append(ms)
        ids.append(session["id"])
    session = ids[0]

    def print_hi():
        ms, (status, run) = timed(lambda: call("POST", f"/api/v1/sessions/{session}/executions", {"code": 'print("hi")'}))
        assert status == 200 and run["stdout"] == "hi\n", run
        return ms

    for _ in range(runs):
        time.sleep(0.2)
        prints.append(print_hi())
    for _ in range(runs):
        back_to_back.append(print_hi())
    for id in ids:
        call("DELETE", f"/api/v1/sessions/{id}")
    # A create 0.5 s after the last (a pool has refilled, if there is one),
    # then its first run at once.
    spaced_creates, first_runs = [], []
    for _ in range(runs):
        time.sleep(0.5)
        ms, (status, fresh) = timed(lambda: call("POST", "/api/v1/sessions", {"template": "python"}))
        assert status == 201, fresh
        spaced_creates.append(ms)
        session = fresh["id"]
        first_runs.append(print_hi())
        call("DELETE", f"/api/v1/sessions/{session}")
    functions = function_figures(call, runs)

    unloaded = data_plane_rate(sandbox_url, 3)
    # 50 sessions each spinning a CPU: the data plane must keep answering.
    busy = [call("POST", "/api/v1/sessions", {"template": "python"})[1]["id"] for _ in range(50)]
    for id in busy:
        status, run = call("POST", f"/api/v1/sessions/{id}/executions",
                           {"code": "while True: pass", "timeout_seconds": 30, "wait": False})
        assert status == 202, run
    # Jails starting (namespaces made) settle first: the figure is for
    # sessions that run, not for their start.
    time.sleep(5)
    loaded = data_plane_rate(sandbox_url, 5)
    for id in busy:
        call("DELETE", f"/api/v1/sessions/{id}")

    print(json.dumps({
        "runs": runs,
        "create_p50_ms": percentile(creates, 0.5),
        "create_p99_ms": percentile(creates, 0.99),
        "print_hi_p50_ms": percentile(prints, 0.5),
        "print_hi_p99_ms": percentile(prints, 0.99),
        "print_hi_back_to_back_p50_ms": percentile(back_to_back, 0.5),
        "spaced_create_p50_ms": percentile(spaced_creates, 0.5),
        "first_run_after_create_p50_ms": percentile(first_runs, 0.5),
        "first_run_after_create_p99_ms": percentile(first_runs, 0.99),
        "host_python_p50_ms": percentile(host, 0.5),
        "print_hi_over_host": round(statistics.median(prints) / statistics.median(host), 2),
        "data_plane_unloaded_rps": round(unloaded),
        "data_plane_with_50_busy_sessions_rps": round(loaded),
        "data_plane_ratio": round(loaded / unloaded, 2),
        **functions,
    }))


main()
