"""``/media/…``: the bytes under ``storage/projects/`` for the browser, read-only.

Starlette's ``StaticFiles`` resolves the path and refuses anything outside the folder (``..``,
encoded dots, absolute paths, symlinks out). Content-addressed thumbnails
(``<project>/thumbs/<sha256>.jpg``) are cached for good; other files are revalidated with their
ETag, since a name may come back with other bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class MediaFiles(StaticFiles):
    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        try:
            return super().lookup_path(path)
        except PermissionError:
            raise  # Starlette answers it itself
        except OSError:
            # A symlink loop (ELOOP) or the like: nothing to serve, not a server error.
            return "", None

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if self._is_thumbnail(full_path):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response

    def _is_thumbnail(self, full_path: str | os.PathLike[str]) -> bool:
        # Judged on the path below the served folder: the folder's own path may hold "thumbs".
        root = os.path.realpath(self.directory or ".")
        parts = Path(os.path.relpath(full_path, root)).parts
        return len(parts) == 3 and parts[1] == "thumbs"
