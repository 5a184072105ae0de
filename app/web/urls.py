"""URLs of stored files and pages, built in one place for the JSON API and the templates.

Image bytes and thumbnails are served statically under ``/media`` (``app/web/media.py``): the
image at ``<project>/images/<split>/<name>``, its thumbnail content-addressed at
``<project>/thumbs/<sha256>.jpg``.
"""

from __future__ import annotations

from urllib.parse import quote

from app.domain.models import ImageInfo


def _part(text: str) -> str:
    return quote(text, safe="")


def image_url(info: ImageInfo) -> str:
    """The image's bytes, as uploaded."""
    return f"/media/{_part(info.dataset)}/images/{info.split}/{_part(info.filename)}"


def thumb_url(info: ImageInfo) -> str:
    """The image's thumbnail (upright JPEG, 256 px on the long side)."""
    return thumb_url_of(info.dataset, info.sha256)


def thumb_url_of(project: str, sha256: str) -> str:
    """The thumbnail of the image with these bytes in the project."""
    return f"/media/{_part(project)}/thumbs/{sha256}.jpg"


def thumb_fallback_url(info: ImageInfo) -> str:
    """The API route that makes the thumbnail again when the static one is missing."""
    return f"/api/v1/projects/{_part(info.dataset)}/images/{_part(info.filename)}/thumbnail"


def image_page_url(info: ImageInfo) -> str:
    """The image's page: the full image with its boxes, and its metadata."""
    return f"/projects/{_part(info.dataset)}/images/{_part(info.filename)}"


TEMPLATE_URLS = {
    "image_url": image_url,
    "thumb_url": thumb_url,
    "thumb_url_of": thumb_url_of,
    "thumb_fallback_url": thumb_fallback_url,
    "image_page_url": image_page_url,
}
