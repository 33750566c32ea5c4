"""Posters of a 1-hour video: five seeked candidate frames measured, the best rendered at every
width as WebP and JPEG (`domain.media.thumbnails`), against the same work done by bare ffmpeg in
the same run: one `bash -c` whose loop runs the same five candidate grabs (the seek positions of
`thumbnails.candidate_times`, the same 32x18 grey probe), then one ffmpeg call writing the same
posters (the sizes and formats the pipeline produced, from one decode of the frame it picked, as
`render_posters` does). The ratio is what the pipeline adds to ffmpeg's own work: Python, the
subprocess calls, scoring the candidates. Rounds alternate which runs first, after an untimed
warm-up of the pipeline (which also gives the frame the bare script renders); medians are reported.
`n` is the length of the video in seconds (always 3600; `--fps` only thins the frames).
Spec: under 30 s; target: under 2 s.

    python bench/thumbnail.py [--fps 2] [--size 1280x720] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _http import report  # noqa: E402

from domain.media import thumbnails  # noqa: E402

DURATION_S = 3600
FFMPEG = ["ffmpeg", "-v", "error", "-nostdin"]  # as `thumbnails._ffmpeg` runs it
# The encoder options `render_posters` gives each format (literals inside it).
ENCODE = {"jpg": ["-q:v", "3"], "webp": ["-c:v", "libwebp", "-quality", "80"]}


def bare_script(source: Path, out_dir: Path, chosen_s: float, posters: list[thumbnails.Poster]) -> str:
    """The pipeline's work as one shell script of bare ffmpeg commands: the candidate grabs in a
    loop (raw grey probe to a file, where the pipeline reads it from the pipe), then the posters."""
    times = " ".join(f"{t:.3f}" for t in thumbnails.candidate_times(float(DURATION_S)))
    gray = f"scale={thumbnails._PROBE_W}:{thumbnails._PROBE_H},format=gray"
    probe = ["-frames:v", "1", "-vf", gray, "-f", "rawvideo", "-"]
    sizes = sorted({(p.width, p.height) for p in posters})
    graph = [f"[0:v]split={len(sizes)}" + "".join(f"[s{i}]" for i in range(len(sizes)))]
    outputs: list[str] = []
    for i, (width, height) in enumerate(sizes):
        formats = [p.format for p in posters if (p.width, p.height) == (width, height)]
        labels = [f"[{fmt}{i}]" for fmt in formats]
        graph.append(f"[s{i}]scale={width}:{height},split={len(formats)}{''.join(labels)}")
        for fmt, label in zip(formats, labels, strict=True):
            outputs += ["-map", label, "-frames:v", "1", *ENCODE[fmt], str(out_dir / f"poster-{width}.{fmt}")]
    grab = shlex.join([*FFMPEG, "-ss", "$t", "-i", str(source), *probe]).replace("'$t'", '"$t"')
    at_chosen = ["-ss", f"{chosen_s:.3f}", "-i", str(source)]
    render = shlex.join([*FFMPEG, "-y", *at_chosen, "-filter_complex", ";".join(graph), *outputs])
    return f"set -eu\nfor t in {times}; do\n  {grab} > {shlex.quote(str(out_dir))}/probe-$t.gray\ndone\n{render}\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fps", type=float, default=2.0, help="frame rate of the generated hour (keeps it quick)"
    )
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (medians reported)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "one-hour.mp4"
        card = f"testsrc2=s={args.size}:r={args.fps}:d={DURATION_S}"
        h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(int(args.fps * 4))]
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", card, *h264, str(source)], check=True)

        def pipeline(out_dir: Path) -> tuple[thumbnails.Candidate, list[thumbnails.Poster]]:
            chosen = thumbnails.pick_frame(source, float(DURATION_S))
            return chosen, thumbnails.render_posters(
                source, chosen.time_s, out_dir, source_width=width, source_height=height
            )

        chosen, posters = pipeline(Path(tmp) / "warm-up")  # untimed: page cache, imports, the frame
        took: dict[str, list[float]] = {"pipeline": [], "bare": []}
        for r in range(max(1, args.rounds)):
            out = {name: Path(tmp) / f"{name}-{r}" for name in took}
            out["bare"].mkdir()
            script = bare_script(source, out["bare"], chosen.time_s, posters)
            for name in ("pipeline", "bare") if r % 2 == 0 else ("bare", "pipeline"):
                started = time.perf_counter()
                if name == "pipeline":
                    again, _ = pipeline(out[name])
                    assert again.time_s == chosen.time_s, (again, chosen)
                else:
                    subprocess.run(["bash", "-c", script], check=True)
                took[name].append(time.perf_counter() - started)
        made = {p.name: p.read_bytes() for p in out["pipeline"].iterdir()}
        bare_made = {p.name: p.read_bytes() for p in out["bare"].iterdir() if p.suffix != ".gray"}
        probes = len(list(out["bare"].glob("*.gray")))
    assert sorted(made) == sorted(bare_made), (sorted(made), sorted(bare_made))
    report(
        "thumbnail.one_hour",
        statistics.median(took["pipeline"]),
        "s",
        statistics.median(took["bare"]),
        n=DURATION_S,
    )
    identical = sum(made[name] == bare_made[name] for name in made)
    print(
        f"# {len(posters)} posters from the frame at {chosen.time_s:.0f} s, {identical} byte-identical "
        f"to bare ffmpeg's (after its {probes} grabs); pipeline {[round(t, 3) for t in took['pipeline']]} s, "
        f"bare {[round(t, 3) for t in took['bare']]} s",
        file=sys.stderr,
    )
    print(f"# bare script of the last round:\n{script}", file=sys.stderr)


if __name__ == "__main__":
    main()
