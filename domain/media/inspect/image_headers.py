"""An image's width and height as its header states them, read without decoding a pixel (seeking
over segments when given the open file), so a decompression bomb is refused before anything
decodes it. PNG (and APNG), JPEG, GIF, WebP, TIFF, HEIF/AVIF."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from domain.media.inspect.source import Reader, boxes


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    animated: bool = False  # known from the header: animated WebP (VP8X flag), APNG (acTL)


def read_image_header(source: bytes | BinaryIO) -> ImageHeader | None:
    """Width and height as the image's header states them, without decoding a pixel.

    `source` is the head of the file (bytes) or the open file itself; with the file, the parser
    seeks over segments (a JPEG whose EXIF block is larger than the head, a TIFF whose directory
    sits after the pixel data) and still reads only a few hundred bytes. None when the format is
    not one of PNG, JPEG, GIF, WebP, TIFF, HEIF/AVIF or the header is damaged."""
    r = Reader(source)
    head = r.at(0, 32)
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(r)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(r)
        if head.startswith((b"GIF87a", b"GIF89a")) and len(head) >= 10:
            return _sized(*struct.unpack("<HH", head[6:10]))
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(head)
        if head.startswith((b"II*\x00", b"MM\x00*")):
            return _tiff(r, "<" if head[0] == ord("I") else ">")
        if head[4:8] == b"ftyp":
            return _heif(r)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def image_dimensions(source: bytes | BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header only; see `read_image_header`."""
    header = read_image_header(source)
    return (header.width, header.height) if header else None


def _sized(width: int, height: int, animated: bool = False) -> ImageHeader | None:
    return ImageHeader(width, height, animated) if width > 0 and height > 0 else None


def _png(r: Reader) -> ImageHeader | None:
    ihdr = r.at(8, 25)
    if len(ihdr) < 25 or ihdr[:8] != b"\x00\x00\x00\x0dIHDR":
        return None
    if zlib.crc32(ihdr[4:21]) != int.from_bytes(ihdr[21:25], "big"):
        return None  # a damaged (or forged without care) header
    width, height = struct.unpack(">II", ihdr[8:16])
    animated, pos = False, 33
    for _ in range(1000):  # APNG: an acTL chunk before the first IDAT
        chunk = r.at(pos, 12)
        if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
            break
        length = int.from_bytes(chunk[:4], "big")
        if chunk[4:8] == b"acTL":
            animated = len(chunk) >= 12 and int.from_bytes(chunk[8:12], "big") > 1
            break
        pos += 12 + length
    return _sized(width, height, animated)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(r: Reader) -> ImageHeader | None:
    pos = 2
    for _ in range(10_000):
        marker = r.at(pos, 4)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        code = marker[1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            pos += 2
            continue
        if code in (0xD9, 0xDA) or len(marker) < 4:  # end of image or scan data before any frame header
            return None
        length = int.from_bytes(marker[2:4], "big")
        if length < 2:
            return None
        if code in _SOF:
            sof = r.at(pos + 5, 4)
            return _sized(*reversed(struct.unpack(">HH", sof))) if len(sof) == 4 else None
        pos += 2 + length
    return None


def _webp(head: bytes) -> ImageHeader | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        animated = bool(head[20] & 0x02)
        return _sized(
            int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1, animated
        )
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _sized((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _sized(width & 0x3FFF, height & 0x3FFF)
    return None


def _tiff(r: Reader, order: str) -> ImageHeader | None:
    ifd = struct.unpack(order + "I", r.at(4, 4))[0]
    count = min(struct.unpack(order + "H", r.at(ifd, 2))[0], 1000)
    entries = r.at(ifd + 2, 12 * count)
    size: dict[int, int] = {}
    for i in range(0, len(entries) - 11, 12):
        tag, kind = struct.unpack(order + "HH", entries[i : i + 4])
        if tag in (256, 257) and kind in (3, 4):
            size[tag] = struct.unpack(
                order + ("H" if kind == 3 else "I"), entries[i + 8 : i + (10 if kind == 3 else 12)]
            )[0]
    return _sized(size.get(256, 0), size.get(257, 0))


def _heif(r: Reader) -> ImageHeader | None:
    """HEIF/AVIF: the largest `ispe` (image spatial extents) under meta/iprp/ipco. A grid image's
    own extents are its full size, larger than each tile's."""
    best = (0, 0)
    for kind, start, end in boxes(r, 0, r.size):
        if kind != b"meta":
            continue
        for kind2, start2, end2 in boxes(r, start + 4, end):  # meta is a full box
            if kind2 != b"iprp":
                continue
            for kind3, start3, end3 in boxes(r, start2, end2):
                if kind3 != b"ipco":
                    continue
                for kind4, start4, _ in boxes(r, start3, end3):
                    if kind4 == b"ispe":
                        width, height = struct.unpack(">II", r.at(start4 + 4, 8))
                        best = max(best, (width, height), key=lambda wh: wh[0] * wh[1])
    return _sized(*best)
