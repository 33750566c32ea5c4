"""`GET /api/v1/content/{id}` throughput against a bare Litestar route served the same way.

Both apps run under uvicorn (one worker, no access log), loaded in alternating rounds by the same
client with the same concurrency; the platform route is called as a logged-in editor, as apps do.
Prints `api_read.content_get` (requests/s, baseline = the bare route's) and p50/p99 latencies.
Embedded defaults: SQLite operational DB, memory stores.

    python bench/api_read.py [--seconds 5] [--rounds 3] [--connections 32] [--items 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import Target, alternate, load_options, login, seed_shuffled, servers  # noqa: E402
from _http import report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    load_options(parser, rounds=3)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url, ids = seed_shuffled(data_dir, args.items)
        apps = [("bare_app:create_bare_app", f"/bare/{ids[0]}"), ("serving.app:create_app", "/api/v1/health")]
        with servers(data_dir, url, apps) as (bare_port, real_port):
            token = login(real_port)
            bare = Target(bare_port, [f"/bare/{i}" for i in ids])
            real = Target(
                real_port, [f"/api/v1/content/{i}" for i in ids], {"Authorization": f"Bearer {token}"}
            )
            alternate([bare, real], rounds=args.rounds, seconds=args.seconds, connections=args.connections)

    b, r = bare.median(), real.median()
    report("api_read.content_get", r["rps"], "per_s", b["rps"])
    report("api_read.content_get_p50", r["p50_ms"], "ms", b["p50_ms"])
    report("api_read.content_get_p99", r["p99_ms"], "ms", b["p99_ms"])


if __name__ == "__main__":
    main()
