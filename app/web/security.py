"""Host and Origin checks, from the first page on (DESIGN.md principle 6).

A Host header ydc does not answer to is refused (DNS rebinding: a web page whose name resolves
to 127.0.0.1 would otherwise read and change everything), and so is a state-changing request
that a browser says comes from another origin: another site, or another port of the same host
(a page served by some other program on localhost shares ydc's cookies, since cookies ignore
ports, and could plant a CSRF cookie of its choosing).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# What a browser says of a request's origin; ydc's own pages send "same-origin" (or "none" for
# a request the user typed). "same-site" is another port or subdomain: not ydc.
FOREIGN_FETCH_SITES = {"cross-site", "same-site"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def _hostname(value: str) -> str:
    """The host part of a Host header (``name``, ``name:port``, ``[::1]:port``)."""
    try:
        return (urlsplit(f"//{value}").hostname or "").lower()
    except ValueError:  # "[::1" and the like: no host ydc answers to
        return ""


def _port(value: str, scheme: str = "") -> int | None:
    """The port of a Host header or an Origin's netloc (the scheme's default when absent)."""
    try:
        port = urlsplit(f"//{value}").port
    except ValueError:  # not a number, or out of range
        return -1
    return port if port is not None else DEFAULT_PORTS.get(scheme)


def _foreign_origin(origin: str, host: str) -> bool:
    """Whether an Origin header names anything but the origin the request was sent to: another
    name (even another loopback name) or another port is another site to a browser."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return True
    origin_host = _hostname(parts.netloc)
    if not origin_host or origin_host != _hostname(host):
        return True  # includes "null" (sandboxed frames, file: pages)
    host_port = _port(host)
    # A Host without a port (a proxy that passes only the name) leaves the port unknown;
    # Sec-Fetch-Site still catches another port there.
    return host_port is not None and _port(parts.netloc, parts.scheme.lower()) != host_port


class HostOriginCheck:
    def __init__(self, app: ASGIApp, allowed_hosts: set[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host_header = headers.get("host", "")
        host = _hostname(host_header)
        if host not in self.allowed:
            await _refuse(scope, receive, send, 400, f"ydc does not answer to host {host!r}.")
            return
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            foreign_site = headers.get("sec-fetch-site", "").lower() in FOREIGN_FETCH_SITES
            if foreign_site or (origin and _foreign_origin(origin, host_header)):
                await _refuse(
                    scope, receive, send, 403, "A request from another web site was refused."
                )
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
