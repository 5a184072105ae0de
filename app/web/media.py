"""``/media/…``: the bytes under ``storage/projects/`` for the browser, read-only.

Starlette's ``StaticFiles`` resolves the path and refuses anything outside the folder (``..``,
encoded dots, absolute paths, symlinks out). Content-addressed thumbnails are cached for good;
other files are revalidated with their ETag, since a name may come back with other bytes.
"""

from __future__ import annotations

import os

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class MediaFiles(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if "/thumbs/" in str(full_path):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response
