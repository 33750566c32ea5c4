"""What authentication costs on a read, and how long a login takes.

`auth.read`: `GET /api/v1/content/{id}` with a bearer token (signature, claims, revocation and
permission checks) against the same route declared public, both under uvicorn (one worker) in the
same run, in alternating rounds. `auth.login_p50` / `auth.login_p99`: sequential
`POST /api/v1/auth/login` latencies with the argon2id parameters of `domain.auth.passwords`.

    python bench/auth.py [--seconds 5] [--rounds 5] [--connections 32] [--logins 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import Target, alternate, load_options, login, seed_shuffled, servers  # noqa: E402
from _http import report  # noqa: E402

from domain.auth import passwords  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    load_options(parser, rounds=5)
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url, ids = seed_shuffled(data_dir, 200)
        apps = [
            ("serving.app:create_app", "/api/v1/health"),
            ("auth_apps:create_public_read_app", f"/api/v1/content/{ids[0]}"),
        ]
        with servers(data_dir, url, apps) as (auth_port, open_port):
            latencies = []
            for _ in range(args.logins):
                started = time.perf_counter()
                token = login(auth_port)
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
