"""One place that turns domain errors into responses: JSON for the API, a page otherwise."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from app.domain.errors import YdcError
from app.web.render import is_htmx, render


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _render(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    response = render(
        request,
        "pages/error.html",
        {"status": status, "message": message},
        fragment="partials/_error.html",
        status_code=status,
    )
    if is_htmx(request):
        # Never swap a generic error over the element that asked (htmx swaps 422s, for the
        # forms that answer with themselves); static/app.js shows the message instead.
        response.headers["HX-Reswap"] = "none"
    return response


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def _describe(error: dict) -> str:  # type: ignore[type-arg]
    if error.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    return f"{_field(tuple(error['loc']))}: {error['msg']}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(YdcError)
    async def domain_error(request: Request, exc: YdcError) -> Response:
        return _render(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(_describe(e) for e in exc.errors())
        return _render(request, 422, message or "The request is not valid.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"There is no page at {request.url.path}."
        response = _render(request, exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response
