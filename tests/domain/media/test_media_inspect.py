"""Uploads judged by content: real files made by ffmpeg once per session, hand-made headers for the
decompression-bomb cases, and every bad input the media issue lists."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from domain.media.inspect.ffprobe import probe
from domain.media.inspect.filenames import sanitize_filename
from domain.media.inspect.image_headers import image_dimensions, read_image_header
from domain.media.inspect.limits import InvalidMedia, MediaLimits, MediaTooLarge, UnsupportedMedia
from domain.media.inspect.sniffing import HEAD_BYTES, sniff
from domain.media.inspect.validation import validate
from tests.ffmpeg_frames import X264_FAST, ffmpeg, lavfi


def x264(pix_fmt: str = "yuv420p") -> list[str]:
    return [*X264_FAST, "-pix_fmt", pix_fmt]


CHAPTERS = """;FFMETADATA1
[CHAPTER]
TIMEBASE=1/1000
START=0
END=500
title=المقدمة
[CHAPTER]
TIMEBASE=1/1000
START=500
END=1000
title=Part two
"""


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media-inspect")
    f = {
        name: d / name
        for name in (
            "av.mp4",
            "silent.mp4",
            "sound.mp4",
            "audio.mp3",
            "tiny.mp4",
            "portrait.mp4",
            "vfr.mkv",
            "anim.gif",
            "anim.webp",
            "photo.png",
            "photo.jpg",
            "photo.gif",
            "lossy.webp",
            "lossless.webp",
            "photo.tiff",
            "faststart.mp4",
            "chapters.txt",
        )
    }
    card = lavfi("testsrc=size=320x180:rate=25:duration=1")
    tone = lavfi("sine=frequency=440:duration=1")
    still = [*lavfi("testsrc=size=96x54"), "-frames:v", "1"]
    f["chapters.txt"].write_text(CHAPTERS, encoding="utf-8")
    ffmpeg(
        *card,
        *tone,
        "-i",
        str(f["chapters.txt"]),
        "-map",
        "0",
        "-map",
        "1",
        "-map_chapters",
        "2",
        "-shortest",
        *x264(),
        "-c:a",
        "aac",
        str(f["av.mp4"]),
    )
    ffmpeg("-i", str(f["av.mp4"]), "-c", "copy", "-movflags", "+faststart", str(f["faststart.mp4"]))
    ffmpeg(*card, *x264(), str(f["silent.mp4"]))
    ffmpeg(*tone, "-c:a", "aac", "-f", "mp4", str(f["sound.mp4"]))  # an .mp4 (brand isom) with sound only
    ffmpeg(*tone, "-c:a", "libmp3lame", str(f["audio.mp3"]))
    # lavfi cannot make a 1x1 picture itself: scale one down (yuv444p, as 4:2:0 needs even sides).
    ffmpeg(
        *lavfi("color=c=red:s=2x2:r=25:d=1"),
        "-vf",
        "scale=1:1",
        *x264("yuv444p"),
        str(f["tiny.mp4"]),
    )
    # A phone's portrait clip: landscape pixels plus a display rotation. ffmpeg >= 6 takes
    # `-display_rotation` on the input; 5.x writes the matrix from the stream's `rotate` tag.
    try:
        ffmpeg(
            "-display_rotation:v:0", "90", "-i", str(f["silent.mp4"]), "-c", "copy", str(f["portrait.mp4"])
        )
    except subprocess.CalledProcessError:
        ffmpeg(
            "-i", str(f["silent.mp4"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(f["portrait.mp4"])
        )
    # Variable frame rate: ten frames at 30 fps, then every third frame, then a 0.4 s hole.
    ffmpeg(
        *lavfi("testsrc=size=160x90:rate=30:duration=2"),
        "-vf",
        "select='not(mod(n\\,3))+lt(n\\,10)',setpts=N/(20*TB)+if(gt(N\\,20)\\,0.4/TB\\,0)",
        "-fps_mode",
        "vfr",
        *x264(),
        str(f["vfr.mkv"]),
    )
    ffmpeg(*lavfi("testsrc=size=64x48:rate=5:duration=1"), str(f["anim.gif"]))
    ffmpeg(
        *lavfi("testsrc=size=64x48:rate=5:duration=1"),
        "-c:v",
        "libwebp_anim",
        "-loop",
        "0",
        str(f["anim.webp"]),
    )
    for name in ("photo.png", "photo.jpg", "photo.gif", "photo.tiff"):
        ffmpeg(*still, str(f[name]))
    ffmpeg(*still, "-c:v", "libwebp", str(f["lossy.webp"]))
    ffmpeg(*still, "-c:v", "libwebp", "-lossless", "1", str(f["lossless.webp"]))

    data = f["av.mp4"].read_bytes()  # index (moov) at the end: cut in half, ffprobe finds no index
    f["truncated.mp4"] = d / "truncated.mp4"
    f["truncated.mp4"].write_bytes(data[: len(data) // 2])
    data = f["faststart.mp4"].read_bytes()  # index first: ffprobe reads it happily, the data is gone
    f["cut_faststart.mp4"] = d / "cut_faststart.mp4"
    f["cut_faststart.mp4"].write_bytes(data[: len(data) // 2])
    f["notes.mp4"] = d / "notes.mp4"
    f["notes.mp4"].write_text("definitely not a video, whatever the name says\n" * 40)
    f["zero.mp4"] = d / "zero.mp4"
    f["zero.mp4"].write_bytes(b"")
    return f


@pytest.fixture
def no_ffprobe(tmp_path, monkeypatch) -> None:
    """A PATH without ffprobe: any call to it fails loudly (FileNotFoundError), not with a reason."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# Hand-made headers: valid signatures and sizes, no pixel data behind them.


def png_header(width: int, height: int) -> bytes:
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def jpeg_header(width: int, height: int, *, padding_segments: int = 0) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    big = b"\xff\xe1" + struct.pack(">H", 65535) + b"Exif\x00\x00" + bytes(65527)  # a huge EXIF block
    sof0 = (
        b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + app0 + big * padding_segments + sof0


def webp_header(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)


def tiff_header(width: int, height: int) -> bytes:
    """Big-endian, width as LONG and height as SHORT: both entry types the parser must read."""
    entries = struct.pack(">HHII", 256, 4, 1, width) + struct.pack(">HHIHH", 257, 3, 1, height, 0)
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + struct.pack(">I", 0)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def heic_header(width: int, height: int) -> bytes:
    """ftyp + meta/iprp/ipco with a 512x512 tile's extents and the whole (grid) image's."""
    ispe = [box(b"ispe", bytes(4) + struct.pack(">II", w, h)) for w, h in ((512, 512), (width, height))]
    meta = box(
        b"meta",
        bytes(4) + box(b"hdlr", bytes(8) + b"pict" + bytes(13)) + box(b"iprp", box(b"ipco", b"".join(ispe))),
    )
    return box(b"ftyp", b"heic" + bytes(4) + b"mif1heic") + meta


HEADERS = {
    "png": png_header,
    "jpeg": jpeg_header,
    "webp": webp_header,
    "gif": gif_header,
    "tiff": tiff_header,
    "heif": heic_header,
}


# Good files.


def test_video_with_audio_and_chapters(media) -> None:
    v = validate(media["av.mp4"])
    assert (v.kind, v.mime, v.format) == ("video", "video/mp4", "mp4")
    assert (v.width, v.height, v.duration_s) == (320, 180, pytest.approx(1.0, abs=0.1))
    video, audio = v.probe.video, v.probe.audio
    assert (video.codec, video.pix_fmt, video.short_side, video.rotation) == ("h264", "yuv420p", 180, 0)
    assert video.fps == pytest.approx(25) and video.frame_count == 25 and not video.is_vfr
    assert (audio.codec, audio.channels, audio.sample_rate) == ("aac", 1, 44100)
    assert "mp4" in v.probe.container and v.probe.size_bytes == media["av.mp4"].stat().st_size
    assert [(c.title, c.start, c.end) for c in v.probe.chapters] == [
        ("المقدمة", 0.0, 0.5),
        ("Part two", 0.5, 1.0),
    ]
    summary = v.summary()  # what media_assets.metadata holds and the media assets read back
    assert summary["kind"] == "video" and summary["duration_s"] == v.duration_s
    assert summary["video"]["width"] == 320 and summary["video"]["display_height"] == 180


def test_video_without_audio(media) -> None:
    v = validate(media["silent.mp4"])
    assert v.kind == "video" and v.probe.audio is None and v.probe.video.codec == "h264"


@pytest.mark.parametrize(
    ("name", "mime", "codec"), [("sound.mp4", "audio/mp4", "aac"), ("audio.mp3", "audio/mpeg", "mp3")]
)
def test_audio_without_video_is_audio_whatever_the_container(media, name, mime, codec) -> None:
    v = validate(media[name])
    assert (v.kind, v.mime, v.probe.audio.codec) == ("audio", mime, codec)
    assert v.probe.video is None and v.width is None and v.duration_s == pytest.approx(1.0, abs=0.1)


def test_an_mp4_is_classified_by_its_streams_not_its_magic(media) -> None:
    head = media["sound.mp4"].read_bytes()[:HEAD_BYTES]
    assert sniff(head).kind == "video"  # ftyp isom says "video" ...
    assert validate(media["sound.mp4"]).kind == "audio"  # ... the streams say audio


def test_portrait_phone_video_with_rotation(media) -> None:
    v = validate(media["portrait.mp4"])
    video = v.probe.video
    assert video.rotation in (90, 270)  # clockwise; the sign of the matrix ffmpeg writes varies by version
    assert (video.width, video.height) == (320, 180)  # as stored
    assert (video.display_width, video.display_height, video.short_side) == (180, 320, 180)
    assert (v.width, v.height) == (180, 320)


def test_variable_frame_rate(media) -> None:
    video = validate(media["vfr.mkv"]).probe.video
    assert video.is_vfr and video.width == 160
    assert 0 < video.fps <= 30


def test_animated_gif_and_webp(media) -> None:
    gif = validate(media["anim.gif"])
    assert (gif.kind, gif.mime, gif.is_animated, gif.probe.video.frame_count) == (
        "image",
        "image/gif",
        True,
        5,
    )
    webp = validate(media["anim.webp"])  # ffmpeg < 7.1 cannot decode it; the VP8X header says animated
    assert (webp.kind, webp.width, webp.height, webp.is_animated) == ("image", 64, 48, True)


@pytest.mark.parametrize(
    "name", ["photo.png", "photo.jpg", "photo.gif", "lossy.webp", "lossless.webp", "photo.tiff"]
)
def test_still_images_by_header_and_by_ffprobe(media, name) -> None:
    v = validate(media[name])
    assert (v.kind, v.width, v.height, v.is_animated) == ("image", 96, 54, False)
    assert (v.probe.video.width, v.probe.video.height) == (96, 54)
    with media[name].open("rb") as f:
        assert image_dimensions(f) == (96, 54)


def test_tiff_directory_after_the_pixels_is_found_by_seeking(media) -> None:
    data = media["photo.tiff"].read_bytes()
    directory = struct.unpack("<I", data[4:8])[0]
    assert directory > 96 * 54  # ffmpeg writes the directory after the image data
    assert image_dimensions(data[:64]) is None  # not in the first bytes ...
    assert image_dimensions(data) == (96, 54)  # ... but reachable


def test_jpeg_size_behind_a_huge_exif_block(tmp_path) -> None:
    data = jpeg_header(4000, 3000, padding_segments=2)
    assert image_dimensions(data[:HEAD_BYTES]) is None  # the frame header is past the head
    path = tmp_path / "camera.jpg"
    path.write_bytes(data)
    with path.open("rb") as f:
        assert image_dimensions(f) == (4000, 3000)


# Bad inputs.


def test_truncated_mp4_reports_ffprobe_reason(media) -> None:
    with pytest.raises(InvalidMedia, match="moov atom not found") as caught:
        probe(media["truncated.mp4"])
    with pytest.raises(InvalidMedia, match="moov atom not found") as caught:
        validate(media["truncated.mp4"])
    assert (caught.value.status, caught.value.field) == (422, "file")
    assert str(media["truncated.mp4"]) not in caught.value.detail  # no server paths in a client error


def test_truncated_mp4_with_index_first_is_caught_by_structure(media) -> None:
    assert probe(media["cut_faststart.mp4"]).duration_s == pytest.approx(1.0, abs=0.1)  # ffprobe is fooled
    with pytest.raises(InvalidMedia, match=r"truncated: its 'mdat' box needs \d+ more bytes"):
        validate(media["cut_faststart.mp4"])


def test_text_file_named_mp4(media) -> None:
    with pytest.raises(UnsupportedMedia, match="plain text") as caught:
        validate(media["notes.mp4"])
    assert caught.value.status == 415


def test_zero_byte_file(media) -> None:
    with pytest.raises(InvalidMedia, match=r"empty \(0 bytes\)") as caught:
        validate(media["zero.mp4"])
    assert caught.value.status == 422


def test_one_pixel_video_is_refused(media) -> None:
    with pytest.raises(InvalidMedia, match="video is 1x1 pixels; each side must be at least 16 px"):
        validate(media["tiny.mp4"])
    assert validate(media["tiny.mp4"], limits=MediaLimits(min_dimension=1)).width == 1  # the limit decides


@pytest.mark.parametrize("fmt", sorted(HEADERS))
def test_huge_image_refused_from_its_header_before_ffprobe(tmp_path, no_ffprobe, fmt) -> None:
    bomb = tmp_path / f"bomb.{fmt}"
    bomb.write_bytes(HEADERS[fmt](30000, 30000))
    assert sniff(bomb.read_bytes()).kind == "image"
    assert image_dimensions(bomb.read_bytes()) == (30000, 30000)
    with pytest.raises(FileNotFoundError):
        probe(bomb)  # ffprobe is unreachable here: validate cannot have asked it
    with pytest.raises(InvalidMedia, match=r"image is 30000x30000 \(900\.0 MP\), above the 100\.0 MP limit"):
        validate(bomb)


def test_png_header_with_bad_checksum_states_no_size(tmp_path) -> None:
    forged = bytearray(png_header(640, 480))
    forged[-1] ^= 0xFF
    assert image_dimensions(bytes(forged)) is None
    path = tmp_path / "forged.png"
    path.write_bytes(bytes(forged))
    with pytest.raises(InvalidMedia, match="PNG header does not state the image size"):
        validate(path)


def test_heif_grid_size_and_unreadable_heif(tmp_path) -> None:
    header = read_image_header(heic_header(4032, 3024))
    assert (header.width, header.height) == (4032, 3024)  # the grid's extents, not a tile's
    path = tmp_path / "photo.heic"
    path.write_bytes(heic_header(4032, 3024))  # a header without image data: no ffprobe can read it
    with pytest.raises(UnsupportedMedia, match="HEIF images cannot be read by this server's ffmpeg"):
        validate(path)


def test_size_limits(media) -> None:
    size = media["av.mp4"].stat().st_size
    with pytest.raises(MediaTooLarge, match="above the 1000 bytes limit") as caught:
        validate(media["av.mp4"], limits=MediaLimits(max_bytes=1000))
    assert caught.value.status == 413
    with pytest.raises(MediaTooLarge, match="declares 6.0 GiB"):
        validate(media["av.mp4"], declared_size=6 * 1024**3)
    with pytest.raises(InvalidMedia, match=f"is {size} bytes but the upload declared {size + 1}"):
        validate(media["av.mp4"], declared_size=size + 1)
    assert validate(media["av.mp4"], declared_size=size).size_bytes == size


def test_duration_pixel_and_kind_limits(media) -> None:
    with pytest.raises(InvalidMedia, match=r"lasts 1\.0 s, above the 0\.4 s limit"):
        validate(media["av.mp4"], limits=MediaLimits(max_duration_s=0.4))
    with pytest.raises(
        InvalidMedia, match=r"video is 320x180 \(57600 pixels\), above the 57280 pixels limit"
    ):
        validate(media["av.mp4"], limits=MediaLimits(max_video_pixels=320 * 179))
    with pytest.raises(
        UnsupportedMedia, match="the file is video; this upload accepts audio, image"
    ) as caught:
        validate(media["av.mp4"], limits=MediaLimits(allowed_kinds=frozenset({"audio", "image"})))
    assert caught.value.status == 415
    assert (
        validate(media["sound.mp4"], limits=MediaLimits(allowed_kinds=frozenset({"audio"}))).kind == "audio"
    )


# Magic bytes.

MP3_FRAME = b"\xff\xfb\x50\xc4" + bytes(204)  # MPEG-1 layer III, 64 kbit/s, 44.1 kHz: 208 bytes


@pytest.mark.parametrize(
    ("head", "kind", "fmt"),
    [
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video", "mov"),
        (b"\x00\x00\x00\x18ftyp3gp6\x00\x00\x01\x003gp6isom", "video", "3gp"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00M4A isomiso2", "audio", "mp4"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image", "heif"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image", "avif"),
        (
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm",
            "video",
            "webm",
        ),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video", "matroska"),
        (b"RIFF\x00\x10\x00\x00AVI LIST", "video", "avi"),
        (b"RIFF\x00\x10\x00\x00WAVEfmt ", "audio", "wav"),
        (b"RIFF\x00\x10\x00\x00WEBPVP8 ", "image", "webp"),
        ((b"\x47\x40\x11\x10" + bytes(184)) * 4, "video", "mpegts"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + MP3_FRAME * 2, "audio", "mp3"),
        (MP3_FRAME * 2, "audio", "mp3"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9) + b"\xff\xf1\x50\x80", "audio", "aac"),
        (b"fLaC\x00\x00\x00\x22", "audio", "flac"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x13OpusHead", "audio", "ogg"),
        (b"OggS\x00\x02" + bytes(22) + b"\x01\x2a\x80theora", "video", "ogg"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "image", "png"),
        (b"GIF87a\x10\x00\x10\x00", "image", "gif"),
        (b"II*\x00\x08\x00\x00\x00", "image", "tiff"),
        (b"", None, "unknown"),
        (bytes(range(256)) * 4, None, "unknown"),
        (b"\xff\xfb\x50\xc4" + bytes(300), None, "unknown"),  # one MPEG frame header, no second frame
        (b"hello world\nthis is text\n", None, "text"),
        ("مرحبا بالعالم\n".encode() * 100, None, "text"),
        (b"%PDF-1.7\n", None, "pdf"),
        (b"PK\x03\x04\x14\x00", None, "zip"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', None, "svg"),
        (b"<!DOCTYPE html><html><body>", None, "html"),
        (b"\x7fELF\x02\x01\x01", None, "executable"),
    ],
)
def test_sniff(head, kind, fmt) -> None:
    sniffed = sniff(head)
    assert (sniffed.kind, sniffed.format) == (kind, fmt)
    assert (sniffed.mime is None) == (kind is None)


def test_sniff_real_files(media) -> None:
    expected = {
        "av.mp4": "video/mp4",
        "vfr.mkv": "video/x-matroska",
        "audio.mp3": "audio/mpeg",
        "anim.gif": "image/gif",
        "photo.jpg": "image/jpeg",
        "lossy.webp": "image/webp",
        "photo.tiff": "image/tiff",
        "photo.png": "image/png",
    }
    assert {name: sniff(media[name].read_bytes()[:HEAD_BYTES]).mime for name in expected} == expected


# File names.


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\فيديو  جديد.mp4", "فيديو جديد.mp4"),
        ("درس\u0627\u064b الأول.mp4", "درس\u0627\u064b الأول.mp4"),  # Arabic letters and marks kept
        ("Cafe\u0301.mov", "Café.mov"),  # NFD from macOS becomes NFC
        ("report\r\nSet-Cookie: x.mp4", "report Set-Cookie_ x.mp4"),
        ('a"b<c>.mp3', "a_b_c_.mp3"),
        ("\u202egpj.exe", "gpj.exe"),  # the right-to-left override that disguises extensions is gone
        ("...hidden.mp4", "hidden.mp4"),
        ("\x00\x01..", "upload"),
        ("   ", "upload"),
        ("", "upload"),
    ],
)
def test_sanitize_filename(given, shown) -> None:
    assert sanitize_filename(given) == shown


def test_sanitize_filename_keeps_the_extension_within_120_characters() -> None:
    long = sanitize_filename("ب" * 300 + ".mp4")
    assert len(long) == 120 and long.endswith("ب.mp4")
    assert len(sanitize_filename("x" * 300)) == 120


# ffmpeg never guesses the format of an upload.


@pytest.mark.parametrize(
    ("name", "demuxer"),
    [
        ("av.mp4", "mov"),
        ("vfr.mkv", "matroska"),
        ("audio.mp3", "mp3"),
        ("photo.png", "png_pipe"),
        ("photo.jpg", "jpeg_pipe"),
        ("anim.gif", "gif"),
        ("lossy.webp", "webp_pipe"),
        ("photo.tiff", "tiff_pipe"),
    ],
)
def test_input_args_pin_the_sniffed_demuxer_and_the_file_protocol(media, name, demuxer) -> None:
    from domain.media.inspect.sniffing import input_args

    assert input_args(media[name]) == [
        "-protocol_whitelist",
        "file",
        "-f",
        demuxer,
        "-i",
        f"file:{media[name].resolve()}",
    ]
    assert probe(media[name]).container  # and ffprobe reads it that way


def test_a_playlist_behind_an_id3_tag_is_not_read_as_a_playlist(media, tmp_path) -> None:
    """An ID3 tag makes it sniff as MP3; ffmpeg, left to guess, would read the HLS playlist behind
    it and open the media file it names (any file of the server ffmpeg can read)."""
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1,\n{media['audio.mp3']}\n#EXT-X-ENDLIST\n"
    path = tmp_path / "talk.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x10" + b"\x00" * 16 + playlist.encode())
    with pytest.raises(InvalidMedia):
        validate(path)
    plain = tmp_path / "notes.m3u8"
    plain.write_text(playlist)
    with pytest.raises(UnsupportedMedia):  # without the tag it is text, refused by its first bytes
        validate(plain)
