"""Uploads are judged by content: real files made by ffmpeg, and the bad inputs of the media issue."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from domain.media.inspect import (
    InvalidMedia,
    MediaTooLarge,
    UnsupportedMedia,
    image_dimensions,
    sanitize_filename,
    sniff,
    validate,
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    f = {name: d / name for name in (
        "av.mp4", "silent.mp4", "audio.m4a", "audio.mp3", "tiny.mp4", "portrait.mp4", "vfr.mkv", "anim.gif",
        "photo.jpg", "photo.webp")}  # fmt: skip
    src = ["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=2"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    ffmpeg(
        *src, *tone, "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(f["av.mp4"])
    )
    ffmpeg(*src, "-c:v", "libx264", "-preset", "ultrafast", str(f["silent.mp4"]))
    ffmpeg(*tone, "-c:a", "aac", str(f["audio.m4a"]))
    ffmpeg(*tone, "-c:a", "libmp3lame", str(f["audio.mp3"]))
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=2x2:r=25:d=1", "-vf", "scale=1:1", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", "-preset", "ultrafast", str(f["tiny.mp4"]))  # lavfi cannot make 1x1 itself  # fmt: skip
    # A phone's portrait clip: landscape pixels plus a rotation in the metadata (ffmpeg 5.x syntax).
    ffmpeg("-i", str(f["silent.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(f["portrait.mp4"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=30:duration=2", "-vf",
           "select='not(mod(n\\,3))+lt(n\\,10)',setpts=N/(20*TB)+if(gt(N\\,20)\\,0.4/TB\\,0)", "-fps_mode", "vfr",
           "-c:v", "libx264", "-preset", "ultrafast", str(f["vfr.mkv"]))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=1", str(f["anim.gif"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x360", "-frames:v", "1", str(f["photo.jpg"]))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x200", "-frames:v", "1", str(f["photo.webp"]))
    truncated = d / "truncated.mp4"
    data = f["av.mp4"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    f["truncated.mp4"] = truncated
    (d / "notes.mp4").write_text("definitely not a video\n" * 50)
    f["notes.mp4"] = d / "notes.mp4"
    (d / "zero.mp4").write_bytes(b"")
    f["zero.mp4"] = d / "zero.mp4"
    return f


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_video_with_audio(files) -> None:
    v = validate(files["av.mp4"])
    assert v.kind == "video" and v.mime == "video/mp4"
    assert (v.probe.video.width, v.probe.video.height, v.probe.video.short_side) == (320, 180, 180)
    assert v.probe.audio.codec == "aac" and v.probe.duration_s == pytest.approx(2.0, abs=0.1)
    assert v.probe.video.fps == pytest.approx(25)


def test_video_without_audio_and_audio_without_video(files) -> None:
    silent = validate(files["silent.mp4"])
    assert silent.kind == "video" and silent.probe.audio is None
    for name in ("audio.m4a", "audio.mp3"):
        audio = validate(files[name])
        assert audio.kind == "audio" and audio.probe.video is None and audio.probe.audio.sample_rate > 0


def test_portrait_phone_video_with_rotation(files) -> None:
    v = validate(files["portrait.mp4"]).probe.video
    assert v.rotation in (90, 270)
    assert (v.display_width, v.display_height) == (180, 320) and v.short_side == 180


def test_variable_frame_rate_is_read(files) -> None:
    v = validate(files["vfr.mkv"]).probe.video
    assert v.fps > 0 and v.width == 160


def test_animated_gif_and_still_images(files) -> None:
    gif = validate(files["anim.gif"])
    assert gif.kind == "image" and gif.probe.is_animated
    for name, dims in (("photo.jpg", (640, 360)), ("photo.webp", (320, 200))):
        image = validate(files[name])
        assert image.kind == "image" and not image.probe.is_animated
        assert image_dimensions(files[name].read_bytes()[:65536]) == dims


def test_bad_inputs_are_refused_with_reasons(files) -> None:
    with pytest.raises(InvalidMedia, match="cannot be read|no readable duration"):
        validate(files["truncated.mp4"])
    with pytest.raises(UnsupportedMedia):
        validate(files["notes.mp4"])
    with pytest.raises(InvalidMedia, match="empty"):
        validate(files["zero.mp4"])
    with pytest.raises(InvalidMedia, match="1x1"):
        validate(files["tiny.mp4"])


def test_huge_image_is_refused_before_anything_decodes_it(tmp_path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(30000, 30000))  # a header only: ffprobe could not even read it
    assert image_dimensions(bomb.read_bytes()) == (30000, 30000)
    with pytest.raises(InvalidMedia, match="30000x30000"):
        validate(bomb)  # refused on the header: ffprobe on this file would have failed differently


def test_size_limit(files) -> None:
    from domain.media.inspect import MediaLimits

    with pytest.raises(MediaTooLarge):
        validate(files["av.mp4"], limits=MediaLimits(max_bytes=1000))


def test_sniff_ignores_names_and_sanitize_keeps_arabic() -> None:
    assert sniff(b"\x00\x00\x00\x18ftypmp42").kind == "video"
    assert sniff(b"\x00\x00\x00\x18ftypM4A ").kind == "audio"
    assert sniff(b"hello world").kind is None
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Users\\x\\فيديو  جديد.mp4") == "فيديو جديد.mp4"
    assert sanitize_filename("\x00..") == "upload"
    assert len(sanitize_filename("a" * 300 + ".mp4")) == 120 and sanitize_filename(
        "a" * 300 + ".mp4"
    ).endswith(".mp4")
