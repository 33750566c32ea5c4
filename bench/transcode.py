"""The HLS ladder of a 60 s 1080p30 test source (ffmpeg lavfi) through the pipeline — the
`media_renditions` asset materialized by Dagster on the embedded deployment: original read from
the object store, ffmpeg with `-progress` moving the job row, files published, rows swapped —
against the very same ffmpeg command run bare, in the same run (alternating, best of `--rounds`).

Figures: `transcode.ladder` (pipeline s, baseline bare s, ratio; target <= 1.10) and
`transcode.realtime` (source seconds per wall second through the pipeline; target >= 1.5).

    python bench/transcode.py [--seconds 60] [--size 1920x1080] [--rounds 2]
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
sys.path.insert(0, str(HERE.parent))
import dagster as dg  # noqa: E402
from _http import report  # noqa: E402

from assets.media import media_metadata, media_partitions  # noqa: E402
from assets.media_renditions import media_renditions  # noqa: E402
from domain.ids import new_id  # noqa: E402
from domain.media import renditions  # noqa: E402
from domain.media.uploads import original_key, record_upload  # noqa: E402
from domain.migrate import upgrade  # noqa: E402
from resources.database import OperationalDatabase  # noqa: E402
from resources.object_store import LocalObjectStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="thmnayah-bench-") as tmp:
        tmp = Path(tmp)
        source = tmp / "source.mp4"
        print(f"# making a {args.seconds} s {args.size}@30 test source", file=sys.stderr)
        inputs = ["-f", "lavfi", "-i", f"testsrc2=s={args.size}:r=30:d={args.seconds}"]
        inputs += ["-f", "lavfi", "-i", f"sine=f=440:d={args.seconds}"]
        encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "60"]
        encode += ["-c:a", "aac", "-shortest"]
        subprocess.run(["ffmpeg", "-v", "error", *inputs, *encode, str(source)], check=True)
        url = f"sqlite:///{tmp / 'thmnayah.db'}"
        upgrade(url)
        database, store = OperationalDatabase(url=url), LocalObjectStore(root=str(tmp / "objects"))
        media_id = new_id()
        with source.open("rb") as f:
            store.put_file(original_key(media_id), f)
        with database.session() as session:
            record_upload(
                session,
                media_id=media_id,
                kind="video",
                mime="video/mp4",
                size=source.stat().st_size,
                sha256="",
                filename="source.mp4",
                metadata={},
                content_item_id=None,
                language=None,
                uploaded_by=None,
            )
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(media_partitions.name, [str(media_id)])
        resources = {"database": database, "object_store": store}
        dg.materialize([media_metadata], partition_key=str(media_id), instance=instance, resources=resources)

        plan = renditions.plan_video(width, height, 30.0, has_audio=True, duration_s=float(args.seconds))
        bare_out = tmp / "bare"
        bare_times, pipeline_times = [], []
        for i in range(args.rounds):
            bare_out.mkdir(exist_ok=True)
            started = time.perf_counter()
            subprocess.run(
                renditions.ladder_command(source, bare_out, plan), check=True, stdout=subprocess.DEVNULL
            )
            bare_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = dg.materialize(
                [media_renditions], partition_key=str(media_id), instance=instance, resources=resources
            )
            pipeline_times.append(time.perf_counter() - started)
            assert result.success
            print(
                f"# round {i + 1}: bare {bare_times[-1]:.2f} s, pipeline {pipeline_times[-1]:.2f} s",
                file=sys.stderr,
            )
        shown = result.asset_materializations_for_node("media_renditions")[0].metadata
        print(
            f"# rungs {shown['details'].value['rungs']}, stored {shown['stored_bytes'].value} B",
            file=sys.stderr,
        )
    pipeline, bare = min(pipeline_times), min(bare_times)
    report("transcode.ladder", pipeline, "s", bare)
    report("transcode.realtime", args.seconds / pipeline, "x")


if __name__ == "__main__":
    main()
