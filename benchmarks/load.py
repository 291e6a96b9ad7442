"""Load test of the web demo: many concurrent clients, some cancelling, against app.py on 127.0.0.1.

Starts `python app.py` in its own process, samples that process's resident memory (VmRSS) while
N gradio_client clients each start a generation at once; every third client cancels after its
first streamed update. Reports how many finished, were cancelled, were told the queue was full or
failed, the server's memory before, at peak and after, and whether it still answers afterwards;
and, for each client the queue gave an estimate, how long it waited to start and (if it
finished) to its result, beside what the queue said: its first estimated time, which Gradio
counts to the result.

    python -m benchmarks.load [--clients 8] [--max-bytes 256] [--json benchmarks/results/load.json]

Run it a second time with more clients than the queue holds (`--clients 48`: 2 running + 32
waiting) to see the queue refuse the rest.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-bytes", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                Client(url, verbose=False)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        "the app did not start: "
                        f"{server.stderr.read()[-2000:] if server.poll() is not None else 'timeout'}"
                    ) from None
                time.sleep(0.5)
        # one generation first: the queue estimates waits from the durations it has seen
        Client(url, verbose=False).predict(None, False, 50, "warming up", "continue", args.max_bytes, 1.0, 0, 1.0, 0,
                                           False, 1.0, True, True, api_name="/generate")
        before = rss_mib(server.pid)
        peak = [before]
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                peak[0] = max(peak[0], rss_mib(server.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        waits: dict[int, dict[str, float]] = {}

        def queued(i: int, job, submitted: float) -> None:
            """Follow the job until it starts: the queue's first estimate, and the real wait."""
            from gradio_client.utils import Status

            while not job.done():
                status = job.status()
                now = time.monotonic() - submitted
                if status.code == Status.IN_QUEUE and status.eta is not None and i not in waits:
                    waits[i] = {"told_at_s": now, "estimate_s": float(status.eta)}
                if status.code in (Status.PROCESSING, Status.ITERATING, Status.PROGRESS):
                    if i in waits:
                        waits[i]["waited_s"] = now - waits[i]["told_at_s"]
                    return
                time.sleep(0.05)

        def one(i: int) -> tuple[str, float]:
            started = time.monotonic()
            try:
                client = Client(url, verbose=False)
                job = client.submit(None, False, 50, f"client {i} says", "continue", args.max_bytes, 1.0, 0, 1.0,
                                    i, False, 1.0, True, True, api_name="/generate")
                queued(i, job, started)
                if i % 3 == 2:  # every third one cancels after its first streamed update
                    while len(job.outputs()) < 2 and not job.done():
                        time.sleep(0.05)
                    job.cancel()
                    return "cancelled", time.monotonic() - started
                progress = job.result(timeout=600)[0]
                if i in waits:
                    waits[i]["done_s"] = time.monotonic() - started - waits[i]["told_at_s"]
                return ("finished" if "Found " in progress else f"odd: {progress[:80]}"), time.monotonic() - started
            except Exception as exc:  # the queue-full refusal arrives as an exception
                text = str(exc)
                kind = "queue full" if "queue is full" in text.lower() else f"error: {type(exc).__name__}: {text[:120]}"
                return kind, time.monotonic() - started

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            outcomes = list(pool.map(one, range(args.clients)))
        wall = time.monotonic() - started
        time.sleep(2)
        stop_sampling.set()
        sampler.join()
        after = rss_mib(server.pid)
        # still serving: one more generation after the storm
        check = Client(url, verbose=False).predict(None, False, 50, "still there?", "continue", 8, 1.0, 0, 1.0, 0,
                                                   False, 1.0, True, True, api_name="/generate")[0]
        counts: dict[str, int] = {}
        for kind, _ in outcomes:
            counts[kind] = counts.get(kind, 0) + 1
        result = {
            "clients": args.clients, "max_bytes": args.max_bytes, "outcomes": counts, "wall_s": round(wall, 1),
            "slowest_client_s": round(max(t for _, t in outcomes), 1),
            "server_rss_mib": {"before": round(before), "peak": round(peak[0]), "after": round(after)},
            "answers_afterwards": "8 / 8 bytes" in check,
            "queue_estimates": {"clients_told": len(waits),
                                "longest_wait_beyond_estimate_s": round(max(
                                    (w["waited_s"] - w["estimate_s"] for w in waits.values() if "waited_s" in w),
                                    default=0.0), 1),
                                "longest_result_beyond_estimate_s": round(max(
                                    (w["done_s"] - w["estimate_s"] for w in waits.values() if "done_s" in w),
                                    default=0.0), 1),
                                "waits": [{k: round(v, 1) for k, v in w.items()} for w in waits.values()]},
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
