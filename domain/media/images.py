"""Public renditions of an uploaded picture: WebP and JPEG at a few widths, and a blurhash.

What comes out, and why:
- Upright: the EXIF orientation is applied to the pixels (`ImageOps.exif_transpose`), so a phone
  photo taken sideways is shown the right way round by every viewer, tag or no tag.
- No metadata: the variants carry no EXIF (GPS position, camera, date, orientation tag), no XMP,
  no comment and no ICC profile. Only pixels leave the building.
- sRGB: an image tagged with an ICC profile (Display P3, Adobe RGB, a CMYK press profile, ...) is
  converted to sRGB with LittleCMS (perceptual intent), then written untagged, which every browser
  and image library reads as sRGB. Colours outside sRGB are mapped into it; the web shows sRGB
  everywhere, where a profile kept in the file is ignored by some mobile image loaders.
- Never upscaled: every width of `IMAGE_WIDTHS` up to the source's own; a source narrower than the
  first one gets one variant at its own width.
- Animated GIF/WebP/PNG: the variants come from the first frame (a still for cards and previews);
  the original stays available for whoever wants the animation.
- Transparency: kept in WebP; JPEG has none, so it is flattened on white.
- Decompression bombs: `inspect.validation.validate` refuses an image above `MediaLimits.max_image_pixels`
  from its header; here Pillow's own guard is set to the same figure and a picture above it is
  refused after reading the header and before decoding a pixel, so nothing that inspect would
  refuse is ever decoded, even if this is called on a file that skipped validation. Only the
  formats inspect accepts are opened (never EPS/PSD/... which Pillow could otherwise parse).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import blurhash
from PIL import Image, ImageCms, ImageOps

from domain.media.inspect.limits import MediaLimits, MediaTooLarge, UnsupportedMedia

IMAGE_WIDTHS = (320, 640, 1280, 1920)
JPEG_QUALITY = 82
WEBP_QUALITY = 80
WEBP_MAX_SIDE = 16383  # the WebP format's own limit
BLURHASH_SIDE = 32  # the blurhash is computed on a thumbnail this big (long side)
# Formats inspect lets through as images (HEIF needs a plugin Pillow does not ship: refused here).
PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "AVIF")

MAX_PIXELS = MediaLimits().max_image_pixels
# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; `_open` turns the warning into a
# refusal, so Pillow's limit and inspect's are the same figure.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class ImageVariant:
    path: Path
    width: int
    height: int
    format: str  # "webp" | "jpg"


@contextmanager
def _open(source: Path) -> Iterator[Image.Image]:
    """The image, header read and nothing decoded yet; refused if bigger than the pixel limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(source, formats=PILLOW_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaTooLarge(f"the image is above the {MAX_PIXELS / 1e6:.0f} MP limit ({exc})") from exc
        except Image.UnidentifiedImageError as exc:
            raise UnsupportedMedia(f"the image is not one of {', '.join(PILLOW_FORMATS)}") from exc
    with im:
        if im.width * im.height > MAX_PIXELS:  # belt and braces: the check above is Pillow's
            raise MediaTooLarge(
                f"the image is {im.width}x{im.height}, above the {MAX_PIXELS / 1e6:.0f} MP limit"
            )
        yield im


def _upright_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed, from the EXIF orientation, without decoding."""
    orientation = im.getexif().get(0x0112, 1)
    return (im.height, im.width) if orientation in (5, 6, 7, 8) else (im.width, im.height)


def _draft(im: Image.Image, display_width: int, display_height: int) -> None:
    """Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding (DCT scaling), never
    below the size wanted. Other formats ignore it."""
    if im.format != "JPEG":
        return
    upright_w, upright_h = _upright_size(im)
    scale = max(display_width / upright_w, display_height / upright_h)
    im.draft("RGB", (math.ceil(im.width * scale), math.ceil(im.height * scale)))


def _load_upright(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """First frame, orientation applied, in RGB or RGBA; and the ICC profile it was tagged with."""
    icc = im.info.get("icc_profile")
    im.seek(0)
    frame = ImageOps.exif_transpose(im)
    if frame.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit grey: scale, don't clip
        frame = frame.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    has_alpha = frame.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        frame.mode == "P" and "transparency" in frame.info
    )
    if frame.mode == "CMYK" and icc:
        return frame, icc  # converted with its profile in `_to_srgb`
    return frame.convert("RGBA" if has_alpha else "RGB"), icc


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """The pixels in sRGB (from the ICC profile when there is one), in RGB or RGBA, info cleared."""
    if icc:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
            im = ImageCms.profileToProfile(
                im, source_profile, _SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode=out_mode
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: keep the numbers as they are, as browsers do
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")
    im.info = {}  # nothing from the original (comment, xmp, exif, icc) reaches the encoder
    return im


def _widths(width: int, height: int, wanted: Sequence[int]) -> list[int]:
    most = min(width, WEBP_MAX_SIDE, math.floor(WEBP_MAX_SIDE * width / height))
    return [w for w in wanted if w <= most] or [most]


def render_image_variants(
    source: Path, out_dir: Path, widths: Sequence[int] = IMAGE_WIDTHS
) -> list[ImageVariant]:
    """Every width up to the source's own, as JPEG and WebP (in that order per width), upright,
    in sRGB, without metadata. Raises MediaTooLarge above the pixel limit, UnsupportedMedia for a
    format outside `PILLOW_FORMATS`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    variants: list[ImageVariant] = []
    with _open(source) as im:
        upright_w, upright_h = _upright_size(im)
        sizes = [(w, max(1, round(upright_h * w / upright_w))) for w in _widths(upright_w, upright_h, widths)]
        _draft(im, *max(sizes))
        frame, icc = _load_upright(im)
    for width, height in sizes:
        scaled = (
            frame
            if frame.size == (width, height)
            else frame.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        )
        picture = _to_srgb(scaled, icc)
        jpg, webp = out_dir / f"image-{width}.jpg", out_dir / f"image-{width}.webp"
        _flatten(picture).save(jpg, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True, exif=b"")
        picture.save(webp, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"")
        variants += [ImageVariant(jpg, width, height, "jpg"), ImageVariant(webp, width, height, "webp")]
    return variants


def _flatten(im: Image.Image) -> Image.Image:
    """JPEG has no alpha: transparent pixels go on white."""
    if im.mode != "RGBA":
        return im
    flat = Image.new("RGB", im.size, (255, 255, 255))
    flat.paste(im, mask=im.getchannel("A"))
    return flat


def blurhash_of(source: Path, components: tuple[int, int] = (4, 3)) -> str:
    """The blurhash (https://blurha.sh) of the upright image, from a thumbnail of at most
    `BLURHASH_SIDE` px (JPEGs are decoded at 1/8 scale for it), transparency on white."""
    with _open(source) as im:
        upright_w, upright_h = _upright_size(im)
        scale = BLURHASH_SIDE / max(upright_w, upright_h)
        _draft(im, max(1, round(upright_w * scale)), max(1, round(upright_h * scale)))
        frame, icc = _load_upright(im)
    frame.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BILINEAR)
    small = _flatten(_to_srgb(frame, icc))
    raw, stride = small.tobytes(), small.width * 3
    rows = [[raw[at : at + 3] for at in range(y * stride, (y + 1) * stride, 3)] for y in range(small.height)]
    return blurhash.encode(rows, components_x=components[0], components_y=components[1])
