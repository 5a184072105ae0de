"""Decoding checks, hashes and thumbnails for stored images (OpenCV, run in a thread by the
stores), and the near-duplicate rule on perceptual hashes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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


THUMB_LONG_SIDE = 256
THUMB_QUALITY = 85

# Two images are near-duplicates when their perceptual hashes differ in at most this many bits
# (of 64): a re-encode, a resize or a small brightness change stays within it; another frame of
# a moving scene usually does not.
NEAR_DUPLICATE_DISTANCE = 4
# The hash cut into bands, most significant bits first, each stored in an indexed column.
# Pigeonhole: d differing bits touch at most d bands, so with more bands than
# NEAR_DUPLICATE_DISTANCE two near-duplicates agree on at least one whole band, and the
# candidates of a hash are the images sharing any band with it (found by index, then checked
# bit by bit). 13-bit bands keep a bucket at about 1/8192 of the images.
PHASH_BAND_BITS = (13, 13, 13, 13, 12)
assert len(PHASH_BAND_BITS) > NEAR_DUPLICATE_DISTANCE and sum(PHASH_BAND_BITS) == 64


@dataclass(frozen=True)
class Decoded:
    width: int
    height: int
    phash: str
    thumbnail: bytes = b""  # JPEG bytes, when asked for


def perceptual_hash(image: np.ndarray) -> str:
    """64-bit DCT hash (pHash) as 16 hex digits; near-duplicates differ in few bits."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()[1:]
    bits = np.append(low > np.median(low), False)
    return np.packbits(bits).tobytes().hex()


def phash_bands(phash: str | None) -> tuple[int | None, ...]:
    """The hash's bands (``PHASH_BAND_BITS``, most significant first); ``None``s without one."""
    if phash is None:
        return (None,) * len(PHASH_BAND_BITS)
    return _bands(int(phash, 16))


def _bands(value: int) -> tuple[int, ...]:
    bands: list[int] = []
    shift = 64
    for bits in PHASH_BAND_BITS:
        shift -= bits
        bands.append((value >> shift) & ((1 << bits) - 1))
    return tuple(bands)


def hamming(a: str, b: str) -> int:
    """How many bits two hex hashes differ in."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_duplicate_groups(hashes: Iterable[tuple[int, str | None]]) -> list[list[int]]:
    """Group ids whose hashes lie within ``NEAR_DUPLICATE_DISTANCE`` of each other, transitively
    (union-find); only pairs sharing a band are compared, never all pairs. Groups of two or more,
    each sorted, in order of their smallest id."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    values: dict[int, int] = {}
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for image_id, phash in hashes:
        if phash is None:
            continue
        parent[image_id] = image_id
        values[image_id] = value = int(phash, 16)
        for band, key in enumerate(_bands(value)):
            buckets[(band, key)].append(image_id)
    for members in buckets.values():
        for n, a in enumerate(members):
            for b in members[n + 1 :]:
                if (values[a] ^ values[b]).bit_count() <= NEAR_DUPLICATE_DISTANCE:
                    ra, rb = root(a), root(b)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for image_id in parent:
        groups[root(image_id)].append(image_id)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def decode_file(path: Path, *, max_pixels: int, thumbnail: bool = False) -> Decoded:
    """Decode the file as OpenCV (and Ultralytics) will read it: EXIF orientation applied.

    With ``thumbnail``, also make the thumbnail from the same decoded pixels (no second decode).
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
    thumb = thumbnail_of(image) if thumbnail else b""
    return Decoded(width, height, perceptual_hash(image), thumb)


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


def make_thumbnail(path: Path) -> bytes:
    """A JPEG about 256 px on its long side, upright (EXIF applied, as OpenCV decodes)."""
    image = read_image(path)
    if image is None:
        raise Invalid("The image cannot be decoded to make its thumbnail.")
    return thumbnail_of(image)


def thumbnail_of(image: np.ndarray) -> bytes:
    """The thumbnail JPEG of decoded (upright) pixels: the long side scaled down to 256 px."""
    height, width = image.shape[:2]
    scale = THUMB_LONG_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        raise Invalid("The thumbnail could not be encoded.")
    return buf.tobytes()
