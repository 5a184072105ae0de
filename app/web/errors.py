"""One place that turns domain errors into responses: JSON for the API, a page otherwise."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from app.domain.errors import YdcError


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _render(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "pages/error.html", {"status": status, "message": message}, status_code=status
    )


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(YdcError)
    async def domain_error(request: Request, exc: YdcError) -> Response:
        return _render(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(f"{_field(tuple(e['loc']))}: {e['msg']}" for e in exc.errors())
        return _render(request, 422, message or "The request is not valid.")
