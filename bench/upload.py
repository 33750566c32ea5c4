"""A 1 GB resumable (tus 1.0) upload on loopback to the real API server (uvicorn, one worker,
embedded settings: SQLite, local object store), as a client would send it: `POST /api/v1/media/tus`,
then PATCHes of `--chunk-mb` streamed from disk (httpx; the client never holds the file either).

- `upload.rss`: the server's peak resident memory (VmHWM of its process, plus any worker children),
  MB, while it takes the timed upload and the resumed one. The high-water mark is reset once the
  server has started and logged the client in (argon2id's 19 MiB belongs to login, not to uploads);
  the peak before that is printed on stderr. Target: under 150.
- `upload.rate`: MB per second, from the creation request to the answer to the last PATCH, which
  includes the server's work at completion (assembling the parts, checking the file by content,
  hashing it, recording it). Baseline: the same client sending the same chunks, at the same offsets,
  to a bare Litestar route (in `create_bare_upload_app` here) that only writes them into a file.
- `upload.resume_identical`: 1 when an upload whose connection is killed halfway through a chunk,
  then resumed from the offset HEAD reports, gives an original whose sha256 is the source's; else 0.

The file is a real WAV (PCM, 48 kHz stereo: 1 GB is about 1.6 h, within the 12 h limit), made by
ffmpeg in seconds, so it passes the server's content checks. MB here are 2**20 bytes.

    python bench/upload.py [--size-mb 1024] [--chunk-mb 64] [--rounds 3] [--checksum]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import free_port, login, seed  # noqa: E402
from _http import report, serve  # noqa: E402

MB = 1024 * 1024
WAV_BYTES_PER_S = 48_000 * 2 * 2  # 48 kHz, stereo, 16-bit
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
BLOCK = MB


# ------------------------------------------------------------------------------ the bare baseline


def create_bare_upload_app():  # noqa: ANN201 (imported by uvicorn only)
    """The baseline: one route that writes a chunk at its offset into a file, nothing else."""
    import os

    from litestar import Litestar, Request, get, patch

    target = Path(os.environ.get("BARE_UPLOAD_FILE", "bare-upload.bin"))

    @patch("/bare-upload", opt={"permission": "public"}, status_code=204, request_max_body_size=None)
    async def bare_upload(request: Request) -> None:
        with open(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644), "wb") as out:  # noqa: PTH123
            out.seek(int(request.headers["upload-offset"]))
            async for chunk in request.stream():
                out.write(chunk)

    @get("/ready", opt={"permission": "public"})
    async def ready() -> str:
        return "ok"

    return Litestar([bare_upload, ready], openapi_config=None)


# ------------------------------------------------------------------------------------- the client


def _blocks(path: Path, offset: int, size: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            block = f.read(min(BLOCK, left))
            if not block:
                raise RuntimeError("the source file is shorter than expected")
            left -= len(block)
            yield block


def _checksum(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    for block in _blocks(path, offset, size):
        digest.update(block)
    return "sha256 " + base64.b64encode(digest.digest()).decode()


def _patch(client, url: str, source: Path, offset: int, size: int, headers: dict, checksum: bool):  # noqa: ANN001, ANN202
    """One PATCH of `size` bytes from `offset`, retried while the server still holds the upload (423)."""
    extra = {"Upload-Checksum": _checksum(source, offset, size)} if checksum else {}
    for _ in range(200):
        response = client.patch(
            url,
            content=_blocks(source, offset, size),
            headers={
                **headers,
                **extra,
                "Upload-Offset": str(offset),
                "Content-Type": OFFSET_STREAM,
                "Content-Length": str(size),
            },
        )
        if response.status_code != 423:
            break
        time.sleep(0.05)
    if response.status_code != 204:
        raise RuntimeError(f"PATCH at {offset} answered {response.status_code}: {response.text[:300]}")
    return response


def tus_create(client, base: str, auth: dict, source: Path) -> str:  # noqa: ANN001
    name = base64.b64encode(source.name.encode()).decode()
    created = client.post(
        f"{base}/api/v1/media/tus",
        headers={**auth, "Upload-Length": str(source.stat().st_size), "Upload-Metadata": f"filename {name}"},
    )
    if created.status_code != 201:
        raise RuntimeError(f"tus creation answered {created.status_code}: {created.text[:300]}")
    return base + created.headers["location"]


def tus_send(
    client, location: str, auth: dict, source: Path, *, start: int, end: int, chunk: int, checksum: bool
) -> tuple[int, str | None, float]:  # noqa: ANN001
    """PATCH `source[start:end]` in chunks; returns (offset, media id once complete, seconds the last
    PATCH took)."""
    offset, response, last_s = start, None, 0.0
    while offset < end:
        started = time.perf_counter()
        response = _patch(client, location, source, offset, min(chunk, end - offset), auth, checksum)
        last_s = time.perf_counter() - started
        offset = int(response.headers["upload-offset"])
    media_id = response.headers.get("thmnayah-media-id") if response is not None else None
    return offset, media_id, last_s


def kill_midway(port: int, path: str, token: str, source: Path, offset: int, size: int) -> None:
    """Send a PATCH's headers and half its body on a raw socket, then drop the connection."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: {OFFSET_STREAM}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock, source.open("rb") as f:
        sock.sendall(head.encode())
        sock.sendfile(f, offset, size // 2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset


def _tree(pid: int) -> list[int]:
    """The process and its children (uvicorn's workers when there are several)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids.extend(int(child) for child in (task / "children").read_text().split())
    return pids


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident memory) of the process and its children, in MB."""
    total_kb = 0
    for each in _tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def reset_peak_rss(pid: int) -> None:
    """Start the high-water mark afresh from the current resident size (Linux >= 4.0)."""
    for each in _tree(pid):
        Path(f"/proc/{each}/clear_refs").write_text("5")


def make_wav(path: Path, size: int) -> str:
    """A WAV of about `size` bytes; returns its sha256."""
    import subprocess

    seconds = size / WAV_BYTES_PER_S
    tone = f"sine=frequency=440:sample_rate=48000:duration={seconds:.3f}"
    pcm = ["-ac", "2", "-c:a", "pcm_s16le"]
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", tone, *pcm, "-y", str(path)], check=True)
    digest = hashlib.sha256()
    for block in _blocks(path, 0, path.stat().st_size):
        digest.update(block)
    return digest.hexdigest()


def bare_round(client, url: str, source: Path, chunk: int, checksum: bool) -> float:  # noqa: ANN001
    size = source.stat().st_size
    started = time.perf_counter()
    for offset in range(0, size, chunk):
        _patch(client, url, source, offset, min(chunk, size - offset), {}, checksum)
    return time.perf_counter() - started


def tus_round(
    client, base: str, auth: dict, source: Path, chunk: int, checksum: bool
) -> tuple[float, float, str]:  # noqa: ANN001
    """One timed upload; returns (seconds, seconds of the last PATCH, media id)."""
    started = time.perf_counter()
    location = tus_create(client, base, auth, source)
    _, media_id, last_s = tus_send(
        client, location, auth, source, start=0, end=source.stat().st_size, chunk=chunk, checksum=checksum
    )
    return time.perf_counter() - started, last_s, str(media_id)


def resume_round(
    client, base: str, auth: dict, port: int, source: Path, chunk: int, checksum: bool
) -> tuple[str, int]:  # noqa: ANN001
    """An upload whose connection dies halfway through its middle chunk, resumed from the offset HEAD
    gives; returns (media id, the offset resumed from)."""
    size = source.stat().st_size
    location = tus_create(client, base, auth, source)
    starts = range(0, size, chunk)
    middle = starts[len(starts) // 2]
    offset, _, _ = tus_send(
        client, location, auth, source, start=0, end=middle, chunk=chunk, checksum=checksum
    )
    token = auth["Authorization"].removeprefix("Bearer ")
    kill_midway(port, location.removeprefix(base), token, source, offset, min(chunk, size - offset))
    resumed_at = int(client.head(location, headers=auth).headers["upload-offset"])
    if resumed_at != offset:
        raise RuntimeError(f"after the killed PATCH the offset is {resumed_at}, not {offset}")
    _, media_id, _ = tus_send(
        client, location, auth, source, start=resumed_at, end=size, chunk=chunk, checksum=checksum
    )
    return str(media_id), resumed_at


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=float, default=1024, help="size of the uploaded file (MB)")
    parser.add_argument("--chunk-mb", type=float, default=64, help="bytes per PATCH (the server allows 64)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed uploads, alternating with the baseline's"
    )
    parser.add_argument(
        "--checksum", action="store_true", help="send Upload-Checksum (sha256) with every PATCH"
    )
    args = parser.parse_args()
    chunk = int(args.chunk_mb * MB)

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        source = data_dir / "talk.wav"
        source_sha = make_wav(source, int(args.size_mb * MB))
        size = source.stat().st_size
        url, _ = seed(data_dir, 0)
        env = data_dir / "bench.env"
        env.write_text(
            f"THMNAYAH_DEPLOYMENT=local\nTHMNAYAH_DATA_DIR={data_dir}\nTHMNAYAH_DATABASE_URL={url}\n"
            f"BARE_UPLOAD_FILE={data_dir / 'bare.bin'}\n"
        )
        common = ["--env-file", str(env), "--app-dir", str(HERE), "--host", "127.0.0.1"]
        common += ["--no-access-log", "--log-level", "warning", "--workers", "1"]
        api_port, bare_port = free_port(), free_port()
        api = serve(
            ["serving.app:create_app", "--factory", "--port", str(api_port), *common],
            f"http://127.0.0.1:{api_port}/api/v1/health",
        )
        bare = serve(
            ["upload:create_bare_upload_app", "--factory", "--port", str(bare_port), *common],
            f"http://127.0.0.1:{bare_port}/ready",
        )
        base = f"http://127.0.0.1:{api_port}"
        originals = data_dir / "objects" / "media"
        try:
            auth = {"Authorization": f"Bearer {login(api_port)}", **TUS}
            start_peak = peak_rss_mb(api.pid)  # start and login (argon2id hashing takes 19 MiB)
            reset_peak_rss(api.pid)
            bare_times, tus_times, identical = [], [], True
            with httpx.Client(timeout=600) as client:
                for _ in range(args.rounds):
                    bare_times.append(
                        bare_round(
                            client, f"http://127.0.0.1:{bare_port}/bare-upload", source, chunk, args.checksum
                        )
                    )
                    (data_dir / "bare.bin").unlink()
                    seconds, last_s, media_id = tus_round(client, base, auth, source, chunk, args.checksum)
                    tus_times.append((seconds, last_s))
                    stored = client.get(f"{base}/api/v1/media/{media_id}", headers=auth).json()
                    identical &= stored["sha256"] == source_sha  # as the server hashed what it stored
                    (originals / media_id / "original").unlink()  # room for the next round
                media_id, resumed_at = resume_round(
                    client, base, auth, api_port, source, chunk, args.checksum
                )
            digest = hashlib.sha256()
            for block in _blocks(originals / media_id / "original", 0, size):
                digest.update(block)
            identical &= digest.hexdigest() == source_sha
            rss = peak_rss_mb(api.pid)
        finally:
            for proc in (api, bare):
                proc.terminate()
                proc.wait()

    (tus_s, last_s), bare_s = sorted(tus_times)[len(tus_times) // 2], sorted(bare_times)[len(bare_times) // 2]
    report("upload.rss", rss, "MB")
    report("upload.rate", size / MB / tus_s, "per_s", size / MB / bare_s)
    report("upload.resume_identical", 1 if identical else 0, "x")
    print(
        f"# {size / MB:.0f} MB in {chunk / MB:g} MB chunks{' with checksums' if args.checksum else ''}, "
        f"median of {args.rounds}: tus {tus_s:.2f} s (the last PATCH, with the completion, {last_s:.2f} s), "
        f"bare route {bare_s:.2f} s; resumed from byte {resumed_at} after a killed PATCH; "
        f"peak memory at start and login {start_peak:.1f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
