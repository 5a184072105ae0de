"""Render a full page, or only its fragment for an htmx request (STYLE.md "Templates and HTMX")."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.web.csrf import csrf_token


def is_htmx(request: Request) -> bool:
    """An htmx request that wants a fragment (a history restore wants the whole page)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request,
    page: str,
    context: dict[str, Any],
    *,
    fragment: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """``page`` in full, or ``fragment`` when htmx asks; both see the same context."""
    templates = request.app.state.templates
    name = fragment if fragment is not None and is_htmx(request) else page
    response: HTMLResponse = templates.TemplateResponse(
        request, name, {**context, "csrf_token": csrf_token(request)}, status_code=status_code
    )
    response.headers["Vary"] = "HX-Request"
    return response


def redirect(request: Request, url: str) -> Response:
    """``HX-Redirect`` for htmx, 303 See Other otherwise."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url, "Vary": "HX-Request"})
    return RedirectResponse(url, status_code=303, headers={"Vary": "HX-Request"})
