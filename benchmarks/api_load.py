"""A closed-loop HTTP load from its own process: `concurrency` keep-alive connections, each
sending its next GET /recommendations as soon as the previous answer is read, for `seconds`.
Prints JSON: latency percentiles measured at the client (request written to body read) and the
throughput.

Why raw asyncio streams rather than an HTTP client library: server and load share the 2 cores,
and httpx in threads spent about as much CPU per request as the server, so the figures measured
the load generator as much as the API. This client sends a fixed request line and reads the
response by its Content-Length (uvicorn always sends one for these JSON answers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import numpy as np


async def connection(host: str, port: int, users: np.ndarray, n: int, seed: int, stop: float, out: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    rng = np.random.default_rng(seed)
    picks = iter(rng.choice(users, size=1_000_000))
    try:
        while time.perf_counter() < stop:
            request = f"GET /recommendations/{next(picks)}?n={n} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            errors.append(status != 200)
    finally:
        writer.close()


async def run(url: str, users: np.ndarray, concurrency: int, seconds: float, n: int) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    errors: list[bool] = []
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(connection(parts.hostname, parts.port, users, n, i, stop, latencies, errors) for i in range(concurrency))
    )
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": int(ms.size),
        "errors": int(sum(errors)),
        "requests_per_s": round(ms.size / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", required=True, help="comma-separated user ids to draw from")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    users = np.array([int(u) for u in args.users.split(",")])
    print(json.dumps(asyncio.run(run(args.url, users, args.concurrency, args.seconds, args.n))))


if __name__ == "__main__":
    main()
