"""Storyboard sprites and their WebVTT, on videos made by ffmpeg in the test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from domain.media.storyboard import MAX_TILES, plan_cues, render_storyboard, tile_size
from tests.ffmpeg_frames import X264_FAST, count_decoded_frames, ffmpeg, lavfi

CUE = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})$")
XYWH = re.compile(r"^storyboard\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)$")


def two_colours(path: Path, first: str, second: str, *, size: str, rate: str, half_s: int, gop: int) -> Path:
    """`first` for half_s seconds, then `second` for as long: where a tile's colour changes shows
    the tile was taken at its own time."""
    ffmpeg(
        *lavfi(f"color={first}:s={size}:r={rate}:d={half_s}", f"color={second}:s={size}:r={rate}:d={half_s}"),
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1[v]",
        "-map",
        "[v]",
        *X264_FAST,
        "-g",
        str(gop),
        str(path),
    )
    return path


def parse_vtt(path: Path) -> list[tuple[float, float, tuple[int, int, int, int]]]:
    """(start, end, (x, y, w, h)) per cue; fails on anything that is not a WebVTT of image cues."""
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        timing, target = block.split("\n")
        t, xywh = CUE.match(timing), XYWH.match(target)
        assert t and xywh, block
        n = [int(g) for g in t.groups()]
        start = n[0] * 3600 + n[1] * 60 + n[2] + n[3] / 1000
        end = n[4] * 3600 + n[5] * 60 + n[6] + n[7] / 1000
        cues.append((start, end, tuple(int(g) for g in xywh.groups())))
    return cues


def check_covering(cues, duration_s: float, sprite: Path) -> None:
    """Cues in order, back to back from 0 to the end, each pointing inside the sprite as it is."""
    with Image.open(sprite) as im:
        width, height = im.size
        assert im.format == "JPEG"
    assert cues[0][0] == 0.0 and cues[-1][1] == pytest.approx(duration_s, abs=0.002)
    for (start, end, _), (next_start, _, _) in zip(cues, cues[1:], strict=False):
        assert start < end == next_start
    for _, _, (x, y, w, h) in cues:
        assert w > 0 and h > 0 and x + w <= width and y + h <= height
    assert len({xywh for _, _, xywh in cues}) == len(cues)  # every cue its own tile


def tile_mean(sprite: Path, xywh: tuple[int, int, int, int]) -> tuple[float, ...]:
    x, y, w, h = xywh
    with Image.open(sprite) as im:
        tile = im.convert("RGB").crop((x + 4, y + 4, x + w - 4, y + h - 4))
    pixels = list(tile.tobytes())
    return tuple(sum(pixels[c::3]) / (len(pixels) / 3) for c in range(3))


def test_short_video_cues_cover_it_and_tiles_follow_the_time(tmp_path: Path) -> None:
    clip = two_colours(tmp_path / "red-blue.mp4", "red", "blue", size="320x180", rate="25", half_s=6, gop=250)
    board = render_storyboard(clip, 12.0, tmp_path / "out", source_width=320, source_height=180)
    assert (board.interval_s, board.count, board.columns, board.rows) == (2.0, 6, 6, 1)
    assert (board.tile_width, board.tile_height) == (160, 90)
    with Image.open(board.sprite) as im:
        assert im.size == (6 * 160, 90)
    cues = parse_vtt(board.vtt)
    assert len(cues) == board.count
    check_covering(cues, 12.0, board.sprite)
    # Exact frames (a 10 s GOP here): the cues of 0-6 s show red, those of 6-12 s blue.
    colours = ["red" if r > b else "blue" for r, _, b in (tile_mean(board.sprite, c[2]) for c in cues)]
    assert colours == ["red"] * 3 + ["blue"] * 3


@pytest.mark.slow
def test_ten_hour_video_is_seeked_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten hours at 1 fps (small and quick to make): 100 tiles of 6 minutes, read from keyframes
    near their time. Dark for five hours then bright, so the tiles show they were taken in place."""
    long = two_colours(
        tmp_path / "ten-hours.mp4", "black", "white", size="320x180", rate="1", half_s=18000, gop=10
    )
    frames = count_decoded_frames(monkeypatch, tmp_path)
    board = render_storyboard(long, 36000.0, tmp_path / "out", source_width=320, source_height=180)
    # ffmpeg's own count: one seek per tile, each decoding its keyframe (at most one more, the
    # decoder's look-ahead) of the 36,000 frames, where decoding up to the tile's time would take thousands.
    decoded = [n for run in frames.per_run() for n in run]
    assert len(decoded) == board.count and all(1 <= n <= 2 for n in decoded), decoded
    assert (board.count, board.interval_s, board.columns, board.rows) == (MAX_TILES, 360.0, 10, 10)
    with Image.open(board.sprite) as im:
        assert im.size == (1600, 900)
    cues = parse_vtt(board.vtt)
    check_covering(cues, 36000.0, board.sprite)
    assert cues[-1][1] == 36000.0 and board.vtt.read_text().count("10:00:00.000") == 1
    brightness = [sum(tile_mean(board.sprite, c[2])) / 3 for c in cues]
    assert all(b < 30 for b in brightness[:50]) and all(b > 225 for b in brightness[50:])


def test_one_second_video_gets_a_tile(tmp_path: Path) -> None:
    clip = tmp_path / "one-second.mp4"
    ffmpeg(
        *lavfi("testsrc2=s=320x180:r=25:d=1"),
        *X264_FAST,
        str(clip),
    )
    board = render_storyboard(clip, 1.0, tmp_path / "out", source_width=320, source_height=180)
    assert board.count == 1 and (board.columns, board.rows) == (1, 1)
    cues = parse_vtt(board.vtt)
    assert cues == [(0.0, 1.0, (0, 0, 160, 90))]
    with Image.open(board.sprite) as im:
        assert im.size == (160, 90)
        assert max(im.convert("L").getextrema()) > 100  # a picture, not an empty tile


def test_portrait_video_gets_tall_tiles(tmp_path: Path) -> None:
    clip = tmp_path / "portrait.mp4"
    ffmpeg(
        *lavfi("testsrc2=s=360x640:r=25:d=5"),
        *X264_FAST,
        str(clip),
    )
    board = render_storyboard(clip, 5.0, tmp_path / "out", source_width=360, source_height=640)
    assert (board.tile_width, board.tile_height) == (160, 284) == tile_size(360, 640)
    assert board.count == 3
    with Image.open(board.sprite) as im:
        assert im.size == (3 * 160, 284)
    check_covering(parse_vtt(board.vtt), 5.0, board.sprite)


def test_plan_and_tile_sizes() -> None:
    interval, cues = plan_cues(36000.0)
    assert interval == 360.0 and len(cues) == MAX_TILES and cues[-1].end_s == 36000.0
    interval, cues = plan_cues(199.0)  # the 2 s floor, the last cue shorter
    assert interval == 2.0 and len(cues) == 100 and (cues[-1].start_s, cues[-1].end_s) == (198.0, 199.0)
    interval, cues = plan_cues(0.4)
    assert len(cues) == 1 and (cues[0].start_s, cues[0].end_s) == (0.0, 0.4)
    assert tile_size(1920, 1080) == (160, 90) and tile_size(100, 100) == (100, 100)  # never upscaled
