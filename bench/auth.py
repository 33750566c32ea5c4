"""What authentication costs on a read, and how long a login takes.

`auth.read`: `GET /api/v1/content/{id}` with a bearer token (signature, claims, revocation and
permission checks) against the same route declared public, both under uvicorn (one worker) in the
same run, in alternating rounds. `auth.login_p50` / `auth.login_p99`: sequential
`POST /api/v1/auth/login` latencies with the argon2id parameters of `domain.auth.passwords`.

    python bench/auth.py [--seconds 5] [--rounds 5] [--connections 32] [--logins 40]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import BENCH_PASSWORD, BENCH_USER, Target, alternate, seed, servers  # noqa: E402
from _http import post_json, report  # noqa: E402

from domain.auth import passwords  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url, ids = seed(data_dir, 200)
        random.Random(7).shuffle(ids)
        apps = [
            ("serving.app:create_app", "/api/v1/health"),
            ("auth_apps:create_public_read_app", f"/api/v1/content/{ids[0]}"),
        ]
        with servers(data_dir, url, apps) as (auth_port, open_port):
            login_url = f"http://127.0.0.1:{auth_port}/api/v1/auth/login"
            latencies = []
            for _ in range(args.logins):
                started = time.perf_counter()
                token = post_json(login_url, {"login": BENCH_USER, "password": BENCH_PASSWORD})[
                    "access_token"
                ]
                latencies.append((time.perf_counter() - started) * 1000)
            paths = [f"/api/v1/content/{i}" for i in ids]
            authenticated = Target(auth_port, paths, {"Authorization": f"Bearer {token}"})
            public = Target(open_port, paths)
            alternate(
                [public, authenticated],
                rounds=args.rounds,
                seconds=args.seconds,
                connections=args.connections,
            )

    a, p = authenticated.median(), public.median()
    report("auth.read", a["rps"], "per_s", p["rps"])
    latencies.sort()
    report("auth.login_p50", latencies[len(latencies) // 2], "ms")
    report("auth.login_p99", latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "ms")
    print(
        f"# argon2id m={passwords.ARGON2_MEMORY_COST_KIB} KiB t={passwords.ARGON2_TIME_COST} "
        f"p={passwords.ARGON2_PARALLELISM}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
