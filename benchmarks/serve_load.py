"""docpress serve under load on loopback, and the time a highlight adds to a hit.

    python benchmarks/serve_load.py --index IDX --queries Q.jsonl [--clients 16] [--requests 500] [--json]

Starts `docpress serve` in a child process (its own model load, --readers 4), waits for
/health, then CLIENTS threads send REQUESTS searches in all (the dev set's questions, cycled;
k=10, hybrid) over HTTP; prints p50/p95/max latency, throughput, errors (must be 0) and the
server's peak RSS (VmHWM). Then, in this process: for the first 20 questions' top 3 hits, the
time of hit.image(dpi=110) and of hit.highlight(dpi=110) (the image plus the overlay).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(base: str, queries: list[str], clients: int, requests: int) -> dict:
    import httpx

    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for i in counter:
                started = time.perf_counter()
                try:
                    response = http.get("/api/search", params={"q": queries[i % len(queries)], "k": 10})
                    ok = response.status_code == 200
                except httpx.HTTPError as exc:
                    ok, response = False, exc
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if not ok:
                        errors.append(str(getattr(response, "status_code", response)))

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "clients": clients, "errors": len(errors),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1), "per_second": round(len(latencies) / wall, 2)}


def highlight_cost(index_dir: Path, queries: list[str]) -> dict:
    from docpress import Index

    image_s, highlight_s = [], []
    with Index.open(index_dir) as index:
        for query in queries[:20]:
            for hit in index.search(query, k=3):
                started = time.perf_counter()
                hit.image(dpi=110)
                image_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                hit.highlight(dpi=110)
                highlight_s.append(time.perf_counter() - started)
    image, painted = np.median(image_s) * 1000, np.median(highlight_s) * 1000
    return {"hits": len(image_s), "render_ms_p50": round(float(image), 1),
            "highlight_ms_p50": round(float(painted), 1), "added_ms_p50": round(float(painted - image), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    queries = [json.loads(line)["query"] for line in args.queries.read_text().splitlines() if line.strip()]
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "docpress", "serve", "--index", str(args.index),
                               "--port", str(port), "--readers", "4"], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"serve exited: {server.stderr.read()[-500:]}")
            time.sleep(0.2)
        ready_s = time.perf_counter() - started
        result = {"ready_s": round(ready_s, 1), **load(base, queries, args.clients, args.requests),
                  "server_peak_rss_mb": round(peak_rss_mb(server.pid), 0)}
    finally:
        server.terminate()
        server.wait(timeout=30)
    result["highlight"] = highlight_cost(args.index, queries)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"serve {args.index}: ready in {result['ready_s']} s (model loaded once)")
    print("| clients | requests | errors | p50 ms | p95 ms | max ms | searches/s | server peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {result['clients']} | {result['requests']} | {result['errors']} | {result['p50_ms']} | "
          f"{result['p95_ms']} | {result['max_ms']} | {result['per_second']} | {result['server_peak_rss_mb']:.0f} |")
    h = result["highlight"]
    print(f"\nhighlight, {h['hits']} hits at 110 dpi: render {h['render_ms_p50']} ms, render + overlay "
          f"{h['highlight_ms_p50']} ms: the overlay adds {h['added_ms_p50']} ms a hit (medians)")


if __name__ == "__main__":
    main()
