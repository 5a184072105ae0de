"""Host and Origin checks, from the first page on (DESIGN.md principle 6).

A Host header ydc does not answer to is refused (DNS rebinding: a web page whose name resolves
to 127.0.0.1 would otherwise read and change everything), and so is a state-changing request
that a browser says comes from another site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _hostname(value: str) -> str:
    """The host part of a Host header (``name``, ``name:port``, ``[::1]:port``)."""
    return (urlsplit(f"//{value}").hostname or "").lower()


class HostOriginCheck:
    def __init__(self, app: ASGIApp, allowed_hosts: set[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = _hostname(headers.get("host", ""))
        if host not in self.allowed:
            await _refuse(scope, receive, send, 400, f"ydc does not answer to host {host!r}.")
            return
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            cross_site = headers.get("sec-fetch-site") == "cross-site"
            if cross_site or (origin and _hostname(urlsplit(origin).netloc) not in self.allowed):
                await _refuse(
                    scope, receive, send, 403, "A request from another web site was refused."
                )
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
