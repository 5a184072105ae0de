"""Decoding checks and hashes for stored images (OpenCV, run in a thread by the stores)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from app.domain.errors import Invalid

# ydc applies its own limit (YDC_MAX_IMAGE_PIXELS) from the header; Pillow's global one would
# refuse or warn at a number the user did not choose.
PILImage.MAX_IMAGE_PIXELS = None

ENCODE_PARAMS = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95]}


@dataclass(frozen=True)
class Decoded:
    width: int
    height: int
    phash: str


def perceptual_hash(image: np.ndarray) -> str:
    """64-bit DCT hash (pHash) as 16 hex digits; near-duplicates differ in few bits."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()[1:]
    bits = np.append(low > np.median(low), False)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def decode_file(path: Path, *, max_pixels: int) -> Decoded:
    """Decode the file as OpenCV (and Ultralytics) will read it: EXIF orientation applied.

    Raises ``Invalid`` with a reason when it is empty, not an image, corrupt or too large.
    """
    if path.stat().st_size == 0:
        raise Invalid("The file is empty (zero bytes).")
    _check_header_size(path, max_pixels)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise Invalid("The file is not an image ydc can read, or it is truncated or corrupt.")
    height, width = image.shape[:2]
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
    return Decoded(width, height, perceptual_hash(image))


def _too_large(width: int, height: int, max_pixels: int) -> Invalid:
    return Invalid(
        f"The image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
        f"at most {max_pixels / 1e6:.0f} are allowed."
    )


def _check_header_size(path: Path, max_pixels: int) -> None:
    """Refuse an image whose header declares too many pixels, before decoding a single one
    (a decompression bomb then costs nothing)."""
    try:
        with PILImage.open(path) as header:
            width, height = header.size
    except (PILImage.UnidentifiedImageError, OSError, ValueError):
        return  # not a format Pillow knows: OpenCV decides below
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)


def encode_frame(image: np.ndarray, suffix: str) -> bytes:
    """Encode a BGR frame in the format its file name asks for."""
    if (
        image is None
        or not isinstance(image, np.ndarray)
        or image.size == 0
        or image.ndim not in (2, 3)
    ):
        raise Invalid("The frame is empty or not an image array.")
    ok, buf = cv2.imencode(suffix, image, ENCODE_PARAMS.get(suffix.lower(), []))
    if not ok:
        raise Invalid(f"The frame could not be encoded as {suffix}.")
    return buf.tobytes()


def read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


THUMB_LONG_SIDE = 256


def make_thumbnail(path: Path) -> bytes:
    """A JPEG about 256 px on its long side, upright (EXIF applied, as OpenCV decodes)."""
    image = read_image(path)
    if image is None:
        raise Invalid("The image cannot be decoded to make its thumbnail.")
    height, width = image.shape[:2]
    scale = THUMB_LONG_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise Invalid("The thumbnail could not be encoded.")
    return buf.tobytes()
