"""Renditions: the ladder as data, and the ffmpeg commands that make it.

Video: one decode feeds every rung (split, then cascaded scaling) into one ffmpeg process that
writes HLS with fMP4 segments. Each rung is a single fragmented MP4 with its audio muxed in, which
the rung's playlist addresses by byte ranges. That file is also the progressive fallback: the
`mp4` variant points at the rung nearest 720p, so no rung is stored twice (MediaCMS keeps an MP4
and an HLS copy of each). An audio-only AAC rung joins the master for low bandwidth; dubbed tracks
join it as an `EXT-X-MEDIA` audio group without touching the video.

Audio uploads are normalized to EBU R128 (-23 LUFS, two passes of `loudnorm`) and written as MP3
and as AAC; the AAC file is a single-file fMP4 with its own HLS playlist, so a dubbed track needs
nothing more to join a video's master.

Every command reads the upload with its sniffed demuxer and the file protocol only
(`inspect.input_args`): a file is never taken for a playlist that would open other URLs.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.media.inspect.sniffing import input_args

SEGMENT_S = 4  # HLS segment length; the GOP is the same 4 s so every segment starts on a keyframe
LOUDNESS = {"I": -23.0, "TP": -1.0, "LRA": 11.0}  # EBU R128
AUDIO_BITRATE_K = 128
AUDIO_ONLY_BITRATE_K = 64
MP3_BITRATE_K = 160
FORMATS = ("hls", "mp4", "audio", "image", "thumbnails")
# An encode that reports its progress on stdout (`-progress pipe:1`) for `run_with_progress`.
FFMPEG_WITH_PROGRESS = ("ffmpeg", "-v", "error", "-nostdin", "-y", "-nostats", "-progress", "pipe:1")


@dataclass(frozen=True)
class Rung:
    """One step of the ladder, named by its short side so portrait video gets the same steps."""

    name: str
    short_side: int
    maxrate_k: int  # the bitrate target: capped-CRF never goes above it
    crf: int  # the quality cap: simple pictures come out smaller than the target
    max_fps: float

    @property
    def bufsize_k(self) -> int:
        return self.maxrate_k * 3 // 2


LADDER: tuple[Rung, ...] = (
    Rung("1080p", 1080, 5000, 23, 60),
    Rung("720p", 720, 2800, 23, 60),
    Rung("480p", 480, 1400, 24, 30),
    Rung("360p", 360, 800, 25, 30),
)
FALLBACK_RUNG = "720p"  # the progressive MP4 is this rung's file (or the nearest below it)
PRESET = "superfast"  # x264 speed: the ladder must run faster than real time on two cores


@dataclass(frozen=True)
class PlannedRung:
    rung: Rung
    width: int
    height: int
    fps: float
    name: str


@dataclass(frozen=True)
class VideoPlan:
    rungs: tuple[PlannedRung, ...]
    has_audio: bool
    duration_s: float
    source_width: int
    source_height: int

    @property
    def fallback(self) -> PlannedRung:
        at_most = [r for r in self.rungs if r.rung.short_side <= 720] or list(self.rungs)
        return max(at_most, key=lambda r: r.rung.short_side)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def plan_video(
    width: int,
    height: int,
    fps: float,
    *,
    has_audio: bool,
    duration_s: float,
    ladder: Sequence[Rung] = LADDER,
) -> VideoPlan:
    """The rungs for a picture of `width` x `height` as displayed. Never upscales: a rung whose short
    side exceeds the source's is dropped; a source below the smallest rung gets one rung at its own
    size. Portrait sources are sized by the short side too (a 720p rung of a phone video is 720 wide)."""
    short, portrait = min(width, height), height > width
    chosen = [r for r in ladder if r.short_side <= short]
    if not chosen:
        smallest = min(ladder, key=lambda r: r.short_side)
        chosen = [Rung(f"{_even(short)}p", _even(short), smallest.maxrate_k, smallest.crf, smallest.max_fps)]
    planned = []
    for rung in chosen:
        side = rung.short_side if rung.short_side < short else _even(short)
        long_side = _even(side * max(width, height) / short)
        w, h = (side, long_side) if portrait else (long_side, side)
        out_fps = min(fps or 30.0, rung.max_fps)
        planned.append(PlannedRung(rung, w, h, round(out_fps, 3), rung.name))
    return VideoPlan(tuple(planned), has_audio, duration_s, width, height)


def ladder_command(source: Path, out_dir: Path, plan: VideoPlan, *, preset: str = PRESET) -> list[str]:
    """One ffmpeg process: one decode, the rungs scaled in a cascade (each from the one above, cheaper
    than each from the source), x264 with capped CRF and a keyframe every 4 s on the clock (so
    variable frame rate sources still cut clean 4 s segments), HLS fMP4 single-file output."""
    rungs = plan.rungs
    graph, label = [], "0:v:0"
    for i, r in enumerate(rungs):
        last = i == len(rungs) - 1
        steps = []
        if i > 0:
            steps.append(f"scale={r.width}:{r.height}:flags=bilinear")
        elif (r.width, r.height) != (plan.source_width, plan.source_height):
            steps.append(f"scale={r.width}:{r.height}:flags=bicubic")
        if i == 0 or r.fps != rungs[i - 1].fps:
            steps.append(f"fps={r.fps}")
        chain = ",".join(steps) or "null"
        if last:
            graph.append(f"[{label}]{chain}[v{i}]")
        else:
            graph.append(f"[{label}]{chain},split=2[v{i}][n{i}]")
            label = f"n{i}"
    args = [
        *FFMPEG_WITH_PROGRESS,
        *input_args(source),
        "-filter_complex",
        ";".join(graph),
    ]
    for i in range(len(rungs)):
        args += ["-map", f"[v{i}]"]
    audio_outputs = len(rungs) + 1 if plan.has_audio else 0
    for _ in range(audio_outputs):
        args += ["-map", "0:a:0"]
    args += [
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{SEGMENT_S})",
        "-sc_threshold",
        "0",
    ]
    for i, r in enumerate(rungs):
        args += [
            f"-crf:v:{i}",
            str(r.rung.crf),
            f"-maxrate:v:{i}",
            f"{r.rung.maxrate_k}k",
            f"-bufsize:v:{i}",
            f"{r.rung.bufsize_k}k",
            f"-g:v:{i}",
            str(max(1, round(r.fps * SEGMENT_S))),
        ]
    if plan.has_audio:
        args += ["-c:a", "aac", "-ac", "2", "-ar", "48000"]
        for i in range(len(rungs)):
            args += [f"-b:a:{i}", f"{AUDIO_BITRATE_K}k"]
        args += [f"-b:a:{len(rungs)}", f"{AUDIO_ONLY_BITRATE_K}k"]
        streams = [f"v:{i},a:{i},name:{r.name}" for i, r in enumerate(rungs)] + [f"a:{len(rungs)},name:audio"]
    else:
        streams = [f"v:{i},name:{r.name}" for i, r in enumerate(rungs)]
    args += [
        *_hls_output("single_file+independent_segments"),
        "-master_pl_name",
        "master.m3u8",
        "-var_stream_map",
        " ".join(streams),
        "-hls_segment_filename",
        str(out_dir / "%v.mp4"),
        str(out_dir / "%v.m3u8"),
    ]
    return args


def _hls_output(flags: str) -> list[str]:
    """The HLS muxer as every rendition writes it: VOD playlists of fMP4 segments `SEGMENT_S` long."""
    return [
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_S),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        flags,
    ]


class FfmpegFailed(RuntimeError):
    pass


def run_with_progress(
    args: list[str],
    duration_s: float,
    on_progress: Callable[[float], None] | None = None,
    *,
    timeout: float = 6 * 3600,
) -> None:
    """Run an ffmpeg command that writes `-progress pipe:1`, calling `on_progress(fraction)` as
    `out_time_us` advances. Raises FfmpegFailed with the tail of ffmpeg's own error output."""
    started = time.monotonic()
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if line.startswith("out_time_us=") and on_progress and duration_s > 0:
                value = line.split("=", 1)[1].strip()
                if value.lstrip("-").isdigit():
                    on_progress(min(1.0, max(0.0, int(value) / 1e6 / duration_s)))
            if time.monotonic() - started > timeout:
                proc.kill()
                raise FfmpegFailed(f"ffmpeg ran over {timeout:g} s and was stopped")
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise FfmpegFailed(f"ffmpeg failed ({code}): {stderr.strip()[-600:] or 'no message'}")


# --- playlists -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioTrack:
    """A dubbed track joining a video's master: `uri` relative to the master."""

    language: str
    name: str
    uri: str


_AUDIO_GROUP = "aud"


def with_audio_tracks(
    master: str, tracks: Sequence[AudioTrack], *, original_language: str | None = None
) -> str:
    """The master playlist with an `EXT-X-MEDIA` audio group: the original (muxed in each video rung,
    so no URI) plus each dubbed track. Idempotent: earlier groups are replaced, not added to."""
    lines = [line for line in master.splitlines() if not line.startswith("#EXT-X-MEDIA:TYPE=AUDIO")]
    out: list[str] = []
    for line in lines:
        if line.startswith("#EXT-X-STREAM-INF:"):
            line = re.sub(r',AUDIO="[^"]*"', "", line)
            if tracks and "RESOLUTION=" in line:  # video rungs only; the audio-only rung stays as it is
                line += f',AUDIO="{_AUDIO_GROUP}"'
        out.append(line)
    if tracks:
        lang = f',LANGUAGE="{original_language}"' if original_language else ""
        media = [
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{_AUDIO_GROUP}",NAME="Original"{lang},DEFAULT=YES,AUTOSELECT=YES'
        ]
        media += [
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{_AUDIO_GROUP}",NAME="{t.name}",LANGUAGE="{t.language}",'
            f'DEFAULT=NO,AUTOSELECT=YES,URI="{t.uri}"'
            for t in tracks
        ]
        at = next((i for i, line in enumerate(out) if line.startswith("#EXT-X-STREAM-INF:")), len(out))
        out[at:at] = media
    return "\n".join(out).rstrip("\n") + "\n"


def playlist_duration(playlist: str) -> float:
    return sum(float(m) for m in re.findall(r"^#EXTINF:([0-9.]+)", playlist, flags=re.MULTILINE))


# --- audio ---------------------------------------------------------------------------------------


def measure_loudness(source: Path, *, timeout: float = 3600) -> dict[str, float]:
    """First `loudnorm` pass: the file's integrated loudness, range, true peak and threshold."""
    target = ":".join(f"{k}={v}" for k, v in LOUDNESS.items())
    done = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            *input_args(source),
            "-map",
            "0:a:0",
            "-af",
            f"loudnorm={target}:print_format=json",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise FfmpegFailed(f"loudness measurement failed: {done.stderr.strip()[-400:]}")
    found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", done.stderr)
    if not found:
        raise FfmpegFailed("loudnorm printed no measurement")
    values = json.loads(found.group(0))
    return {
        k: float(values[k]) for k in ("input_i", "input_lra", "input_tp", "input_thresh", "target_offset")
    }


def loudnorm_filter(measured: dict[str, float]) -> str:
    """Second pass: linear gain from the measurement (no pumping) where the range allows it."""
    i, tp, lra = LOUDNESS["I"], LOUDNESS["TP"], LOUDNESS["LRA"]
    m = measured
    if m["input_i"] == float("-inf") or m["input_i"] < -70:  # silence: nothing to normalize
        return "anull"
    return (
        f"loudnorm=I={i}:TP={tp}:LRA={lra}:measured_I={m['input_i']}:measured_LRA={m['input_lra']}:"
        f"measured_TP={m['input_tp']}:measured_thresh={m['input_thresh']}:offset={m['target_offset']}:"
        "linear=true,aresample=48000"
    )


def audio_command(source: Path, out_dir: Path, measured: dict[str, float]) -> list[str]:
    """One decode, normalized once, then MP3 and AAC (a single-file fMP4 with an HLS playlist)."""
    return [
        *FFMPEG_WITH_PROGRESS,
        *input_args(source),
        "-filter_complex",
        f"[0:a:0]{loudnorm_filter(measured)},asplit=2[m][a]",
        "-map",
        "[m]",
        "-c:a",
        "libmp3lame",
        "-b:a",
        f"{MP3_BITRATE_K}k",
        "-ar",
        "48000",
        "-ac",
        "2",
        str(out_dir / "audio.mp3"),
        "-map",
        "[a]",
        "-c:a",
        "aac",
        "-b:a",
        f"{AUDIO_BITRATE_K}k",
        "-ar",
        "48000",
        "-ac",
        "2",
        *_hls_output("single_file"),
        "-hls_segment_filename",
        str(out_dir / "audio.mp4"),
        str(out_dir / "audio.m3u8"),
    ]


def integrated_loudness(path: Path) -> float:
    """The EBU R128 integrated loudness of a file's audio (LUFS), from ffmpeg's `ebur128` filter."""
    done = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            *input_args(path),
            "-map",
            "0:a:0",
            "-af",
            "ebur128",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    found = re.findall(r"I:\s+(-?[0-9.]+) LUFS", done.stderr)
    if not found:
        raise FfmpegFailed(f"ebur128 printed no loudness: {done.stderr.strip()[-300:]}")
    return float(found[-1])
