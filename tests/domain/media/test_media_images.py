"""Image renditions and blurhash, on pictures made by Pillow in the test."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import blurhash
import pytest
from PIL import ExifTags, Image, ImageCms

from domain.media import images
from domain.media.images import IMAGE_WIDTHS, blurhash_of, render_image_variants
from domain.media.inspect.limits import MediaLimits, MediaTooLarge

RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)


def two_halves(width: int, height: int, left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another: where each half lands tells the orientation."""
    im = Image.new("RGB", (width, height), left)
    im.paste(right, (width // 2, 0, width, height))
    return im


def near(pixel, colour, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


@pytest.fixture
def phone_photo(tmp_path: Path) -> Path:
    """Stored 1400x700 (red left, blue right) with Orientation=6 (rotate 90 deg clockwise to show),
    a GPS position, camera make and model, XMP and a comment, as phones write them."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Phone 12"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (24.0, 42.0, 36.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (46.0, 40.0, 12.0)
    path = tmp_path / "phone.jpg"
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    two_halves(1400, 700).save(path, "JPEG", quality=90, exif=exif, xmp=xmp, comment=b"secret place")
    with Image.open(path) as check:  # the fixture really carries what the variants must drop
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
        assert "xmp" in check.info and check.info["comment"] == b"secret place"
    return path


def test_rotated_phone_photo_comes_out_upright_without_metadata(phone_photo: Path, tmp_path: Path) -> None:
    variants = render_image_variants(phone_photo, tmp_path / "out")
    # Shown 700x1400: widths up to 700, each as JPEG and WebP, taller than wide.
    assert [(v.width, v.height, v.format) for v in variants] == [
        (320, 640, "jpg"),
        (320, 640, "webp"),
        (640, 1280, "jpg"),
        (640, 1280, "webp"),
    ]
    for v in variants:
        raw = v.path.read_bytes()
        with Image.open(v.path) as im:
            assert im.size == (v.width, v.height) and im.format == ("JPEG" if v.format == "jpg" else "WEBP")
            assert not im.getexif() and not im.getexif().get_ifd(ExifTags.IFD.GPSInfo)
            assert "xmp" not in im.info and "comment" not in im.info and "icc_profile" not in im.info
            rgb = im.convert("RGB")
            # Rotated clockwise: the stored left (red) is now the top, the right (blue) the bottom.
            assert near(rgb.getpixel((v.width // 2, v.height // 4)), RED)
            assert near(rgb.getpixel((v.width // 2, 3 * v.height // 4)), BLUE)
        assert b"Exif\x00\x00" not in raw and b"PhoneMaker" not in raw and b"secret place" not in raw
        assert b"adobe:ns:meta" not in raw


def test_jpeg_variants_are_progressive_rgb(phone_photo: Path, tmp_path: Path) -> None:
    variants = render_image_variants(phone_photo, tmp_path / "out", widths=(320,))
    jpg = next(v for v in variants if v.format == "jpg")
    with Image.open(jpg.path) as im:
        assert im.mode == "RGB" and im.info.get("progressive") == 1


def test_never_upscaled(tmp_path: Path) -> None:
    source = tmp_path / "mid.png"
    two_halves(1000, 500).save(source)
    variants = render_image_variants(source, tmp_path / "out")
    assert sorted({(v.width, v.height) for v in variants}) == [(320, 160), (640, 320)]
    assert max(IMAGE_WIDTHS) > 1000 and all(v.width <= 1000 for v in variants)


def test_narrow_source_gets_one_variant_at_its_own_width(tmp_path: Path) -> None:
    source = tmp_path / "icon.png"
    two_halves(200, 100).save(source)
    variants = render_image_variants(source, tmp_path / "out")
    assert [(v.width, v.height, v.format) for v in variants] == [(200, 100, "jpg"), (200, 100, "webp")]
    with Image.open(variants[0].path) as im:
        assert near(im.getpixel((10, 50)), RED) and near(im.getpixel((190, 50)), BLUE)


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    source = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (400, 300), colour) for colour in (RED, GREEN, BLUE)]
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(source) as check:
        assert check.n_frames == 3
    variants = render_image_variants(source, tmp_path / "out")
    assert [(v.width, v.format) for v in variants] == [(320, "jpg"), (320, "webp")]
    for v in variants:
        with Image.open(v.path) as im:
            assert getattr(im, "n_frames", 1) == 1
            assert near(im.convert("RGB").getpixel((160, 120)), RED)


def test_png_with_alpha_keeps_it_in_webp_and_goes_on_white_in_jpeg(tmp_path: Path) -> None:
    source = tmp_path / "logo.png"
    im = Image.new("RGBA", (640, 320), (0, 0, 0, 0))  # transparent left half
    im.paste((20, 20, 230, 255), (320, 0, 640, 320))  # opaque blue right half
    im.save(source)
    variants = {v.format: v for v in render_image_variants(source, tmp_path / "out", widths=(640,))}
    with Image.open(variants["jpg"].path) as jpg:
        assert jpg.mode == "RGB"
        assert near(jpg.getpixel((100, 160)), (255, 255, 255), 8) and near(jpg.getpixel((500, 160)), BLUE)
    with Image.open(variants["webp"].path) as webp:
        assert webp.mode == "RGBA"
        assert webp.getpixel((100, 160))[3] == 0 and webp.getpixel((500, 160))[3] == 255


def test_palette_with_transparency_and_16_bit_grey(tmp_path: Path) -> None:
    palette = tmp_path / "palette.png"
    Image.new("RGBA", (400, 200), (0, 0, 0, 0)).quantize().save(palette, transparency=0)
    grey = tmp_path / "grey16.png"
    Image.new("I;16", (400, 200), 32768).save(grey)  # mid grey in 16 bits
    for source in (palette, grey):
        variants = render_image_variants(source, tmp_path / source.stem)
        assert [v.width for v in variants] == [320, 320]
    with Image.open(tmp_path / "grey16" / "image-320.jpg") as im:
        assert near(im.getpixel((10, 10)), (128, 128, 128), 4)  # scaled to 8 bits, not clipped to white


def swapped_primaries_profile() -> bytes:
    """A minimal ICC v2 RGB matrix/TRC profile whose red and green primaries are sRGB's green and
    red: a pixel stored as pure red in it is green on screen."""
    d50 = (0.9642, 1.0, 0.8249)
    srgb_red, srgb_green, srgb_blue = (
        (0.4361, 0.2225, 0.0139),
        (0.3851, 0.7169, 0.0971),
        (0.1431, 0.0606, 0.7141),
    )

    def s15(values) -> bytes:
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    xyz = lambda values: b"XYZ \x00\x00\x00\x00" + s15(values)  # noqa: E731
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233) + b"\x00\x00"  # gamma 2.2
    text = b"swapped"
    desc = (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(text) + 1)
        + text
        + b"\x00"
        + bytes(4 + 4 + 2 + 1 + 67)
    )
    cprt = b"text\x00\x00\x00\x00" + b"none\x00"
    tags = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", xyz(d50)),
        (b"rXYZ", xyz(srgb_green)),
        (b"gXYZ", xyz(srgb_red)),
        (b"bXYZ", xyz(srgb_blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"\x00" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0) + s15(d50) + bytes(4)
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def test_icc_tagged_picture_is_converted_to_srgb(tmp_path: Path) -> None:
    profile = swapped_primaries_profile()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    source = tmp_path / "tagged.jpg"
    Image.new("RGB", (400, 200), (255, 0, 0)).save(source, "JPEG", quality=95, icc_profile=profile)
    for v in render_image_variants(source, tmp_path / "out"):
        with Image.open(v.path) as im:
            assert "icc_profile" not in im.info
            r, g, b = im.convert("RGB").getpixel((160, 80))
            assert g > 200 and r < 80 and b < 80, (r, g, b)  # shown green, as the profile says


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    assert Image.MAX_IMAGE_PIXELS == MediaLimits().max_image_pixels == images.MAX_PIXELS
    # A PNG header that states 20000x20000 (400 MP) and holds almost nothing.
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: (  # noqa: E731
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    )
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    just_over = tmp_path / "just-over.png"  # 10001x10000: above 100 MP, under Pillow's default 2x error
    just_over.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 10001, 10000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    for source in (bomb, just_over):
        with pytest.raises(MediaTooLarge):
            render_image_variants(source, tmp_path / "out")
        with pytest.raises(MediaTooLarge):
            blurhash_of(source)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_blurhash_is_short_stable_and_tells_pictures_apart(phone_photo: Path, tmp_path: Path) -> None:
    other = tmp_path / "green.png"
    Image.new("RGB", (800, 600), GREEN).save(other)
    first = blurhash_of(phone_photo)
    assert len(first) == 4 + 2 * 4 * 3 and first == blurhash_of(phone_photo)
    assert blurhash_of(other) != first
    assert len(blurhash_of(other, components=(3, 3))) == 4 + 2 * 3 * 3
    # Decoded back, the hash of the upright photo is red on top and blue at the bottom.
    pixels = blurhash.decode(first, 4, 8)
    assert pixels[0][2][0] > pixels[0][2][2] and pixels[7][2][2] > pixels[7][2][0]


def test_blurhash_of_known_pictures(tmp_path: Path) -> None:
    black = tmp_path / "black.png"
    Image.new("RGB", (64, 48), (0, 0, 0)).save(black)
    assert blurhash_of(black) == "L00000fQfQfQfQfQfQfQfQfQfQfQ"  # black, as every blurhash encoder writes it
    # Orientation applied first: a sideways-stored PNG tagged Orientation=6 hashes as the upright one.
    upright, sideways = tmp_path / "upright.png", tmp_path / "sideways.png"
    two_halves(300, 200).save(upright)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    two_halves(300, 200).transpose(Image.Transpose.ROTATE_90).save(sideways, exif=exif)
    assert blurhash_of(sideways) == blurhash_of(upright)
