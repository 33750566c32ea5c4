"""The README's examples work as typed: every shell block under a "Try" heading runs, in order, in
one bash session against the API on embedded defaults with the demo seeded (`thmnayah demo`, then
`thmnayah api`). Any shell error or any answer that is not 2xx fails the test, naming the request;
afterwards the API's own health figures show no server error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_API = "API=http://127.0.0.1:8000"
# Each curl ends its output with a newline and reports its answer on stderr; --fail-with-body
# makes a 4xx/5xx a shell error.
PREAMBLE = r"""set -euo pipefail
curl() { command curl --fail-with-body -w '\n%{stderr}HTTP %{http_code} %{url_effective}\n' "$@"; }
"""


def readme_try_blocks(readme: str) -> list[str]:
    """The ```bash blocks under every heading that starts with "Try", in order."""
    blocks = []
    for section in re.split(r"^#{2,3} ", readme, flags=re.MULTILINE)[1:]:
        if section.startswith("Try"):
            blocks += re.findall(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    return blocks


def _get(url: str, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {
        **os.environ,
        "THMNAYAH_DATA_DIR": str(data_dir),
        "THMNAYAH_API_PORT": str(port),
        "THMNAYAH_DEPLOYMENT": "local",
    }
    for name in ("THMNAYAH_DATABASE_URL", "THMNAYAH_REDIS_URL", "THMNAYAH_S3_BUCKET", "THMNAYAH_SMTP_HOST"):
        env.pop(name, None)
    cli = [sys.executable, "-m", "orchestration.cli"]
    seeded = subprocess.run([*cli, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    log = data_dir / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*cli, "api"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/v1/health")
                break
            except OSError:
                assert proc.poll() is None, f"the API exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"the API did not come up:\n{log.read_text()}"
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_try_blocks_are_found() -> None:
    blocks = readme_try_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 4
    assert blocks[0].startswith(DOCUMENTED_API + "\n"), "the first example sets API, which the others use"


def test_every_readme_example_answers_2xx(api: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    blocks = readme_try_blocks((ROOT / "README.md").read_text())
    script = PREAMBLE + "\n".join(blocks).replace(DOCUMENTED_API, f"API={api}", 1)
    done = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=300)
    answers = re.findall(r"^HTTP (\d{3}) (\S+)$", done.stderr, flags=re.MULTILINE)
    failed = [f"{status} {url}" for status, url in answers if not status.startswith("2")]
    assert done.returncode == 0 and not failed, (
        f"exit {done.returncode}; non-2xx: {failed}\nstderr:\n{done.stderr[-4000:]}\nstdout:\n{done.stdout[-4000:]}"
    )
    curls = len(re.findall(r"(?:^|\$\(|\| )\s*curl ", "\n".join(blocks), flags=re.MULTILINE))
    assert len(answers) >= curls >= 15, (len(answers), curls)

    # What the examples promise: the Arabic searches find the demo items they name.
    pages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"items"')]
    found = [sorted(item["slug"] for item in page["items"]) for page in pages]
    assert ["arabic-calligraphy-podcast"] in found and ["ramadan-documentary"] in found, found

    # Afterwards the API's health figures show 0 % 5xx. They are flushed every 2 s: wait until they
    # hold the examples' requests.
    login = urllib.request.Request(
        f"{api}/api/v1/auth/login",
        data=json.dumps({"login": "analyst", "password": "demo-analyst-thmnayah"}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as response:
        headers = {"Authorization": f"Bearer {json.loads(response.read())['access_token']}"}
    deadline = time.monotonic() + 30
    while True:
        health = _get(f"{api}/api/v1/analytics/system/health?minutes=60", headers)
        if health["overall"]["requests"] >= len(answers):
            break
        assert time.monotonic() < deadline, health["overall"]
        time.sleep(0.5)
    assert health["overall"]["server_error_rate"] == 0, [
        r for r in health["routes"] if r["server_error_rate"]
    ]
