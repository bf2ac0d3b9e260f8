"""Sandbox creation latency and idle-sandbox memory against a running `sbx serve`.

Usage: sandboxes.py URL TOKEN PID SPEC_FILE COUNT [LARGE_SPEC ...]
Prints one JSON object with the figures.
"""
import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlparse


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Starts VmHWM (peak RSS) over from the current RSS (Linux >= 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")


def main():
    url, token, pid, spec_file, count = sys.argv[1:6]
    large_specs = sys.argv[6:]
    count = int(count)
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(method, path, body):
        conn.request(method, path, json.dumps(body), headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, data

    with open(spec_file) as f:
        status, body = call("POST", "/api/v1/projects", {"name": "bench", "spec": f.read()})
        assert status == 201, body
    call("POST", "/api/v1/sandboxes", {"project": "bench"})  # warm the path
    rss_before = rss_kib(pid)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        status, body = call("POST", "/api/v1/sandboxes", {"project": "bench", "auth": "none"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 201, body
    time.sleep(0.5)
    rss_after = rss_kib(pid)
    latencies.sort()
    result = {
        "sandboxes": count,
        "create_p50_ms": round(statistics.median(latencies), 3),
        "create_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "rss_added_mib": round((rss_after - rss_before) / 1024, 1),
        "imports": [],
    }
    for index, path in enumerate(large_specs):
        with open(path) as f:
            text = f.read()
        rss_before = rss_kib(pid)
        reset_peak(pid)
        started = time.perf_counter()
        status, body = call("POST", "/api/v1/projects", {"name": f"large-{index}", "spec": text})
        elapsed = time.perf_counter() - started
        time.sleep(0.5)
        result["imports"].append({"spec": path.split("/api/")[-1], "mib": round(len(text) / 2**20, 1),
                                  "status": status, "seconds": round(elapsed, 2),
                                  "peak_added_mib": round((rss_kib(pid, "VmHWM") - rss_before) / 1024, 1),
                                  "kept_added_mib": round((rss_kib(pid) - rss_before) / 1024, 1)})
    print(json.dumps(result))


main()
