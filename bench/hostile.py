#!/usr/bin/env python3
"""A bystander sandbox under attack: `sbx serve` with one sandbox whose
template is the probe's string bomb and one whose script copies megabyte
strings until its time limit, each hit by ATTACKERS concurrent clients,
while wrk measures an ordinary sandbox's GET. Prints the bystander's req/s
and p99 with and without the attack, what the attackers got, and the
server's peak memory.

    python3 bench/hostile.py [SBX]          # SBX: target/release/sbx
    DURATION=10 ATTACKERS=8 python3 bench/hostile.py

The server is pinned to core 0 and wrk to core 1; traffic goes to
127.0.0.1 only, and every loop stops by itself after DURATION seconds.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
DURATION = int(os.environ.get("DURATION", "10"))
ATTACKERS = int(os.environ.get("ATTACKERS", "8"))
PORT = 4040
BASE = f"http://127.0.0.1:{PORT}"
TOKEN = "bench-hostile-admin-token-0123"
BOMB = (
    '{% set s = "x" * 100000000 %}{% set t = s ~ s ~ s ~ s ~ s ~ s ~ s ~ s %}'
    "{% set u = t ~ t %}{{ u|length }}"
)
COPIES = 'let s = "x"; s.pad(900000, "x"); loop { let t = s + "y"; }'


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wrk(url):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{DURATION}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = next(float(l.split()[1]) for l in out.splitlines() if l.startswith("Requests/sec"))
    p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
    return rps, p99


def peak_rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def main():
    sbx = sys.argv[1] if len(sys.argv) > 1 else str(
        pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "sbx"
    )
    data = tempfile.mkdtemp()
    env = dict(os.environ, SBX_ADMIN_TOKEN=TOKEN, SBX_LOG="warn")
    server = subprocess.Popen(
        ["taskset", "-c", "0", sbx, "serve", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data,
         "--no-request-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if call("GET", "/api/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        spec = (ROOT / "bench/spec.yaml").read_text()
        status, body = call("POST", "/api/v1/projects", {
            "name": "hostile", "spec": spec,
            "templates": {"getItem.j2": BOMB}, "behaviours": {"createItem": COPIES},
        })
        assert status == 201, body
        status, body = call("POST", "/api/v1/projects", {"name": "plain", "spec": spec})
        assert status == 201, body
        attacked = call("POST", "/api/v1/sandboxes", {"project": "hostile", "auth": "none"})[1]["base_url"]
        bystander = call("POST", "/api/v1/sandboxes", {"project": "plain", "auth": "none"})[1]["base_url"]

        quiet = wrk(f"{bystander}/items/1")
        stop = time.monotonic() + DURATION
        seen = []

        def attack(path, method):
            while time.monotonic() < stop:
                started = time.monotonic()
                request = urllib.request.Request(
                    attacked + path, method=method,
                    data=b'{"name": "x", "price": 1, "currency": "usd"}' if method == "POST" else None,
                    headers={"content-type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as answer:
                        status = answer.status
                except urllib.error.HTTPError as error:
                    status = error.code
                seen.append((path, status, time.monotonic() - started))

        threads = [
            threading.Thread(target=attack, args=("/items/1", "GET") if i % 2 == 0 else ("/items", "POST"))
            for i in range(ATTACKERS)
        ]
        for thread in threads:
            thread.start()
        loud = wrk(f"{bystander}/items/1")
        for thread in threads:
            thread.join()
        print(f"bystander GET, quiet:            {quiet[0]:.0f} req/s, p99 {quiet[1]}")
        print(f"bystander GET, {ATTACKERS} attackers:     {loud[0]:.0f} req/s, p99 {loud[1]}")
        for path in ("/items/1", "/items"):
            runs = [(s, t) for p, s, t in seen if p == path]
            statuses = sorted({s for s, _ in runs})
            slowest = max((t for _, t in runs), default=0)
            print(f"attacks on {path}: {len(runs)} answered, statuses {statuses}, slowest {slowest:.2f} s")
        print(f"server peak RSS: {peak_rss_mb(server.pid)} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
