"""A lean HTTP/1.1 keep-alive load generator (asyncio streams), so the client costs little CPU and
costs the same for every route measured in one run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence


async def _worker(
    host: str,
    port: int,
    paths: Sequence[str],
    stop_at: float,
    latencies: list[float],
    offset: int,
    extra: str,
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    i = offset
    try:
        while time.perf_counter() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            done += 1
    finally:
        writer.close()
    return done


async def _load(
    host: str, port: int, paths: Sequence[str], seconds: float, connections: int, extra: str
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    counts = await asyncio.gather(
        *(_worker(host, port, paths, stop_at, latencies, n, extra) for n in range(connections))
    )
    return sum(counts) / (time.perf_counter() - started), latencies


def measure(
    host: str,
    port: int,
    paths: Sequence[str],
    *,
    seconds: float,
    connections: int,
    warmup: float = 2.0,
    headers: dict[str, str] | None = None,
) -> dict:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    asyncio.run(_load(host, port, paths, warmup, connections, extra))
    rps, latencies = asyncio.run(_load(host, port, paths, seconds, connections, extra))
    latencies.sort()
    return {
        "rps": rps,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def serve(args: list[str], url: str, timeout: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", *args])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not answer {url}")


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def report(bench: str, value: float, unit: str, baseline: float | None = None, **extra: object) -> None:
    """One JSON line; `extra` fields follow (`n`: the scale actually run, for a figure whose name
    carries one; `goal`: the target, in the figure's unit)."""
    line: dict[str, object] = {"bench": bench, "value": round(value, 3), "unit": unit}
    if baseline:
        line.update(baseline=round(baseline, 3), ratio=round(value / baseline, 3))
    line.update(extra)
    print(json.dumps(line), flush=True)
