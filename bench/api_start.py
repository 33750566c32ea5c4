"""How fast the API starts and how much memory a worker holds once it has, against a bare Litestar
app with one `/api/v1/health` route started the same way.

Each server is started as `thmnayah api` starts the API: `python -m uvicorn <factory> --factory`, one
worker (uvicorn then serves in the process it started, no supervisor), no access log, embedded
settings on a temporary, migrated data dir (SQLite, local object store, memory stores). Rounds
alternate between the two servers, so load from elsewhere on the machine hits them alike; each
figure is the median of the rounds.

- `api_start.ready_s`: seconds from spawning the process to the first 200 on `/api/v1/health`
  (polled every 10 ms). Baseline: the bare app.
- `api_start.rss`: MB resident (VmRSS of the server process) once it answered that first 200, before
  any other request. Baseline: the bare app. Target: under 120.
- `api_start.import_s`: seconds a fresh interpreter takes to `import serving.app`. Baseline:
  `import litestar` in the same way. Target: under 1.

MB here are 2**20 bytes.

    python bench/api_start.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _http import report  # noqa: E402  (light: this module is also the bare app's, see below)

READY_TIMEOUT_S = 120
IMPORT_PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def create_bare_health_app():  # noqa: ANN201 (imported by uvicorn only)
    """The baseline: a Litestar app with the API's liveness route and nothing else."""
    from litestar import Litestar, get

    @get("/api/v1/health", opt={"permission": "public"})
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([health], openapi_config=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """VmRSS (resident memory now) of the process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_once(factory: str, env_file: Path) -> tuple[float, float]:
    """Spawn a server, wait for its first 200 on /api/v1/health; returns (seconds, MB resident)."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", "--log-level", "warning", "--workers", "1"),
        *("--env-file", str(env_file), "--app-dir", str(HERE)),
    ]
    url = f"http://127.0.0.1:{port}/api/v1/health"
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    try:
        deadline = started + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{factory} exited with {proc.returncode} before answering")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{factory} did not answer {url} within {READY_TIMEOUT_S} s")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.01)
        ready_s = time.perf_counter() - started
        return ready_s, rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def import_seconds(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=READY_TIMEOUT_S,
    )
    return float(done.stdout.strip())


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="starts of each server, alternating")
    args = parser.parse_args()

    from domain.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'bench.db'}"
        upgrade(url)
        env_file = data_dir / "bench.env"
        env_file.write_text(
            f"THMNAYAH_DEPLOYMENT=local\nTHMNAYAH_DATA_DIR={data_dir}\nTHMNAYAH_DATABASE_URL={url}\n"
        )
        api: dict[str, list[float]] = {"ready": [], "rss": [], "import": []}
        bare: dict[str, list[float]] = {"ready": [], "rss": [], "import": []}
        for _ in range(args.rounds):
            for results, factory, module in (
                (bare, "api_start:create_bare_health_app", "litestar"),
                (api, "serving.app:create_app", "serving.app"),
            ):
                ready_s, rss = start_once(factory, env_file)
                results["ready"].append(ready_s)
                results["rss"].append(rss)
                results["import"].append(import_seconds(module))

    report("api_start.ready_s", median(api["ready"]), "s", median(bare["ready"]))
    report("api_start.rss", median(api["rss"]), "MB", median(bare["rss"]), goal=120)
    report("api_start.import_s", median(api["import"]), "s", median(bare["import"]), goal=1)
    print(
        f"# median of {args.rounds}: API ready in {median(api['ready']):.2f} s at {median(api['rss']):.1f} MB, "
        f"bare app in {median(bare['ready']):.2f} s at {median(bare['rss']):.1f} MB; "
        f"import serving.app {median(api['import']):.2f} s, import litestar {median(bare['import']):.2f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
