"""A closed-loop HTTP load from its own process: `concurrency` clients, each sending its next
GET /recommendations as soon as the previous answer arrives, for `seconds`. Prints JSON: the
latency percentiles measured at the client (request sent to body read) and the throughput."""

from __future__ import annotations

import argparse
import json
import threading
import time

import httpx
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", required=True, help="comma-separated user ids to draw from")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    users = np.array([int(u) for u in args.users.split(",")])
    latencies: list[list[float]] = [[] for _ in range(args.concurrency)]
    errors = [0] * args.concurrency
    stop = time.perf_counter() + args.seconds

    def client(index: int) -> None:
        rng = np.random.default_rng(index)
        with httpx.Client(base_url=args.url, timeout=10) as http:
            http.get("/health")  # connect before measuring
            while time.perf_counter() < stop:
                user = int(rng.choice(users))
                started = time.perf_counter()
                response = http.get(f"/recommendations/{user}", params={"n": args.n})
                latencies[index].append(time.perf_counter() - started)
                errors[index] += response.status_code != 200

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    all_ms = np.concatenate([np.array(l) for l in latencies]) * 1000
    print(
        json.dumps(
            {
                "concurrency": args.concurrency,
                "requests": int(all_ms.size),
                "errors": int(sum(errors)),
                "requests_per_s": round(all_ms.size / wall, 1),
                "p50_ms": round(float(np.percentile(all_ms, 50)), 2),
                "p90_ms": round(float(np.percentile(all_ms, 90)), 2),
                "p99_ms": round(float(np.percentile(all_ms, 99)), 2),
                "max_ms": round(float(all_ms.max()), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
