"""Posters of a 1-hour video: five seeked candidate frames measured, the best rendered at every
width as WebP and JPEG (`domain.media.thumbnails`), against one bare `ffmpeg -ss ... -frames:v 1`
grab of a single JPEG from the same file in the same run. Spec: under 30 s; target: under 2 s.

    python bench/thumbnail.py [--fps 2] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _http import report  # noqa: E402

from domain.media import thumbnails  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--fps", type=float, default=2.0, help="frame rate of the generated hour (keeps it quick)"
    )
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "one-hour.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={args.size}:r={args.fps}:d=3600",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(args.fps * 4)), str(source)],
                       check=True)  # fmt: skip
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-ss", "1800", "-i", str(source), "-frames:v", "1", "-y",
                        str(Path(tmp) / "bare.jpg")], check=True)  # fmt: skip
        bare = time.perf_counter() - started

        started = time.perf_counter()
        chosen = thumbnails.pick_frame(source, 3600.0)
        posters = thumbnails.render_posters(source, chosen.time_s, Path(tmp) / "out", source_width=width,
                                            source_height=height)  # fmt: skip
        pipeline = time.perf_counter() - started
    report("thumbnail.one_hour", pipeline, "s", bare)
    print(f"# {len(posters)} posters from the frame at {chosen.time_s:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
