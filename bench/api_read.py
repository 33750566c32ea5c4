"""`GET /api/v1/content/{id}` throughput against a bare Litestar route served the same way.

Both apps run under uvicorn (one worker, no access log) in turn, loaded by the same client with the
same concurrency. Prints `api_read.content_get` (requests/s, baseline = the bare route's) and its
p50/p99 latencies. Embedded defaults: SQLite operational DB.

    python bench/api_read.py [--seconds 5] [--rounds 3] [--connections 32] [--items 200]
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http import measure, report, serve  # noqa: E402

from domain import content  # noqa: E402
from domain.db import sync_engine  # noqa: E402
from domain.migrate import upgrade  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, count: int) -> list[str]:
    upgrade(url)
    engine = sync_engine(url)
    ids = []
    with Session(engine) as session, session.begin():
        for i in range(count):
            item = content.create_content(
                session,
                content.NewContent(
                    type="article",
                    title={"ar": f"مقالة رقم {i}", "en": f"Article {i}"},
                    description={"en": "A short description"},
                    tags=["news", "bench"],
                    metadata={"source": "bench"},
                ),
            )
            ids.append(str(item.id))
    engine.dispose()
    return ids


def median_round(rounds: list[dict]) -> dict:
    return sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = f"sqlite:///{data_dir / 'bench.db'}"
        ids = seed(url, args.items)
        random.Random(7).shuffle(ids)
        env_file = data_dir / "bench.env"
        env_file.write_text(
            f"THMNAYAH_DEPLOYMENT=local\nTHMNAYAH_DATA_DIR={data_dir}\nTHMNAYAH_DATABASE_URL={url}\n"
        )
        common = [
            "--env-file",
            str(env_file),
            "--app-dir",
            str(Path(__file__).resolve().parent),
            "--host",
            "127.0.0.1",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            "1",
        ]

        bare_port, real_port = free_port(), free_port()
        procs = [
            serve(
                ["bare_app:create_bare_app", "--factory", "--port", str(bare_port), *common],
                f"http://127.0.0.1:{bare_port}/bare/{ids[0]}",
            ),
            serve(
                ["serving.app:create_app", "--factory", "--port", str(real_port), *common],
                f"http://127.0.0.1:{real_port}/api/v1/content/{ids[0]}",
            ),
        ]
        # Alternate rounds so a burst of load from elsewhere on the machine hits both alike;
        # report the median round of each.
        bare_rounds, real_rounds = [], []
        try:
            for _ in range(args.rounds):
                bare_rounds.append(
                    measure(
                        "127.0.0.1",
                        bare_port,
                        [f"/bare/{i}" for i in ids],
                        seconds=args.seconds,
                        connections=args.connections,
                    )
                )
                real_rounds.append(
                    measure(
                        "127.0.0.1",
                        real_port,
                        [f"/api/v1/content/{i}" for i in ids],
                        seconds=args.seconds,
                        connections=args.connections,
                    )
                )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    bare, real = median_round(bare_rounds), median_round(real_rounds)

    report("api_read.content_get", real["rps"], "per_s", bare["rps"])
    report("api_read.content_get_p50", real["p50_ms"], "ms", bare["p50_ms"])
    report("api_read.content_get_p99", real["p99_ms"], "ms", bare["p99_ms"])


if __name__ == "__main__":
    main()
