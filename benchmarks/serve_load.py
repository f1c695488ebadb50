"""Load test of ``python -m siamdeploy.serve``: N concurrent client streams against a local server.

Starts a server on free 127.0.0.1 ports (loopback only; nothing else is contacted), then for each N in
``--streams`` (default 1, 4, 16) runs N client threads, each tracking its own generated sequence
(``--frames`` frames, stopping at ``--time-limit`` seconds per N). Reports requests per second, p50/p99
request latency, the batch sizes Triton formed (mean from its metrics endpoint: inferences / executions;
the server's own histogram at shutdown), and checks:

- every stream's boxes equal a local single-target run of the same frames (same backend, 1e-3 px);
- a client process killed mid-stream (SIGKILL) leaves the other streams intact;
- malformed requests sent meanwhile are each answered with an error while the others are served;
- the server stops on SIGTERM and leaves no process behind.

Prints a table and writes ``benchmarks/results/serve_load.json``. Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import siamdeploy  # noqa: E402
from siamdeploy.serve import Client, ServeError  # noqa: E402
from siamdeploy.serve.process import ServerProcess  # noqa: E402
from siamdeploy.synthetic import generate_sequence  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KILLED_CLIENT = """
import sys, time
from siamdeploy.serve import Client
from siamdeploy.synthetic import generate_sequence
seq = generate_sequence(seed=999, num_frames=4)
client = Client(sys.argv[1])
stream = client.open(seq.frames[0], seq.boxes[0])
print("opened", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    for frame in seq.frames[1:]:
        stream.track(frame)
"""


def metric_sums(url: str) -> dict[str, float]:
    """Triton's Prometheus counters for the tracking model (``nv_inference_count``, ``nv_inference_exec_count``,
    ``nv_inference_request_success``, ``nv_inference_request_failure``)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'^(nv_inference_\w+)\{[^}]*model="siamdeploy"[^}]*\}\s+([0-9.eE+-]+)$', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def run_stream(url: str, seq: Any, deadline: float) -> dict[str, Any]:
    latencies, boxes = [], []
    with Client(url) as client:
        stream = client.open(seq.frames[0], seq.boxes[0])
        for frame in seq.frames[1:]:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            boxes.append(stream.track(frame).bbox)
            latencies.append(time.perf_counter() - t0)
        stream.close()
    return {"latencies": latencies, "boxes": np.array(boxes, np.float64).reshape(-1, 4)}


def malformed(url: str, frame: np.ndarray, stop: threading.Event) -> dict[str, int]:
    """Send malformed requests until ``stop``; count those answered with an error (``answered``) and any that
    were accepted (``accepted``: a server bug)."""
    bad = [dict(stream="never-opened", image=frame), dict(stream="jpeg", jpeg=b"\xff\xd8 not a jpeg", box=(1, 1, 9, 9)),
           dict(stream="outside", image=frame, box=(9000, 9000, 4, 4)),
           dict(stream="dtype", image=frame.astype(np.float32), box=(1, 1, 9, 9)),
           dict(stream="channels", image=frame[..., :2], box=(1, 1, 9, 9))]
    counts = {"answered": 0, "accepted": 0}
    with Client(url) as client:
        i = 0
        while not stop.is_set() and i < 200:
            try:
                client.request(**bad[i % len(bad)])
                counts["accepted"] += 1
            except ServeError:
                counts["answered"] += 1
            i += 1
            time.sleep(0.05)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint or export folder (default: the shipped reference SiamRPN)")
    ap.add_argument("--config")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--streams", default="1,4,16", help="comma-separated stream counts (default 1,4,16)")
    ap.add_argument("--frames", type=int, default=16, help="frames per stream (default 16)")
    ap.add_argument("--time-limit", type=float, default=90.0, help="seconds per stream count at most (default 90)")
    ap.add_argument("--queue-delay-us", type=int, default=5000)
    ap.add_argument("--json", default="benchmarks/results/serve_load.json")
    args = ap.parse_args()
    counts = [int(c) for c in args.streams.split(",")]
    if args.model:
        model, load = args.model, {"config": args.config}
    else:
        ref = siamdeploy.reference_model("siamrpn_alex_dwxcorr")
        model, load = ref.checkpoint, ref.load_args()
    server_args = ["--backend", args.backend, "--max-streams", str(max(counts) + 8), "--max-batch", "32",
                   "--queue-delay-us", str(args.queue_delay_us), "-q"]
    if load.get("config"):
        server_args += ["--config", str(load["config"])]
    if load.get("preset"):
        server_args += ["--preset", str(load["preset"])]
    local = siamdeploy.load_tracker(model, backend=args.backend, **{k: v for k, v in load.items() if v})
    seqs = [generate_sequence(seed=200 + i, num_frames=args.frames) for i in range(max(counts))]
    expected = []
    for seq in seqs:
        local.init(seq.frames[0], seq.boxes[0])
        expected.append(np.array([local.track(f).bbox for f in seq.frames[1:]]))
    local.close()

    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    server = ServerProcess(model, server_args, cwd=ROOT)
    try:
        for n in counts:
            before = metric_sums(server.metrics_url)
            deadline = time.monotonic() + args.time_limit
            killed = stop = None
            extras: dict[str, Any] = {}
            if n == 4 or (n == counts[-1] and 4 not in counts):  # the fault checks ride along one run
                killed = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, server.url], cwd=ROOT,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                stop = threading.Event()
                pool_bad = ThreadPoolExecutor(1)
                bad_future = pool_bad.submit(malformed, server.url, seqs[0].frames[0], stop)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                futures = [pool.submit(run_stream, server.url, seqs[i], deadline) for i in range(n)]
                if killed is not None:
                    assert killed.stdout is not None
                    killed.stdout.readline()  # "opened": it is tracking now
                    time.sleep(1.0)
                    killed.send_signal(signal.SIGKILL)
                    killed.wait()
                    extras["killed_client"] = "SIGKILL mid-stream"
                results = [f.result() for f in futures]
            wall = time.perf_counter() - t0
            if stop is not None:
                stop.set()
                extras["malformed"] = bad_future.result()
                pool_bad.shutdown()
            after = metric_sums(server.metrics_url)
            lat = np.array([x for r in results for x in r["latencies"]]) * 1000.0
            worst = max(float(np.abs(r["boxes"] - expected[i][:len(r["boxes"])]).max()) if len(r["boxes"]) else 0.0
                        for i, r in enumerate(results))
            inferences = after.get("nv_inference_count", 0) - before.get("nv_inference_count", 0)
            executions = after.get("nv_inference_exec_count", 0) - before.get("nv_inference_exec_count", 0)
            row = {"streams": n, "requests": int(lat.size), "seconds": wall, "requests_per_s": lat.size / wall,
                   "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                   "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                   "mean_batch": inferences / executions if executions else None,
                   "frames_per_stream": [len(r["boxes"]) for r in results], "max_box_diff_px": worst,
                   "boxes_match": worst <= 1e-3, **extras}
            rows.append(row)
        code, left = server.stop()
    except BaseException:
        server.stop()
        raise
    stopped = [line for line in server.lines if line.startswith("siamdeploy.serve stopped:")]
    stats = json.loads(stopped[-1].split(":", 1)[1]) if stopped else {}
    checks["sigterm_exit_code"] = code
    checks["processes_left"] = sorted(left)
    checks["server_batch_sizes"] = stats.get("batch_sizes", {})
    checks["server_tracked_together"] = stats.get("tracked_together", {})
    ok = (all(r["boxes_match"] for r in rows) and not left and code == 143
          and all(r.get("malformed", {}).get("accepted", 0) == 0 for r in rows)
          and all(r.get("malformed", {"answered": 1})["answered"] > 0 for r in rows))
    checks["all_ok"] = ok

    print(f"{'streams':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10} "
          f"{'max |box diff|':>14}  notes")
    for r in rows:
        notes = []
        if "killed_client" in r:
            notes.append("a client killed mid-stream")
        if "malformed" in r:
            notes.append(f"{r['malformed']['answered']} malformed requests answered with errors")
        mb = f"{r['mean_batch']:.2f}" if r["mean_batch"] else "-"
        print(f"{r['streams']:>7} {r['requests']:>8} {r['requests_per_s']:>7.1f} {r['p50_ms'] or 0:>8.1f} "
              f"{r['p99_ms'] or 0:>8.1f} {mb:>10} {r['max_box_diff_px']:>14.2e}  {'; '.join(notes)}")
    print(f"server batch sizes (requests per Triton batch: count): {checks['server_batch_sizes']}")
    print(f"streams per track_together call: {checks['server_tracked_together']}")
    print(f"SIGTERM: exit {code}, processes left: {len(left)}; all checks {'passed' if ok else 'FAILED'}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"machine": {"platform": platform.platform(), "processor": platform.processor(),
                               "cpus": os.cpu_count()}, "model": model, "backend": args.backend,
                   "frames": args.frames, "queue_delay_us": args.queue_delay_us, "rows": rows, "checks": checks},
                  fh, indent=2)
    print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
