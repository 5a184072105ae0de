"""One place that turns domain errors into responses: JSON for the API, a page otherwise.

Every API error answers ``{"detail": "<what was wrong>"}`` (``ErrorOut``), and the OpenAPI
document says so: ``document_errors`` declares on each API operation the errors every route of
its kind answers (422, 404 where a path names something, 403 on writes: the CSRF check); the
routes declare the others they raise (409, 413, …) with ``error_responses``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from app.domain.errors import YdcError
from app.web.csrf import SAFE_METHODS
from app.web.render import is_htmx, render


class ErrorOut(BaseModel):
    """The body of every error the JSON API answers."""

    detail: str = Field(description="What was wrong with the request, in words.")


ERROR_MEANINGS = {
    400: "The request cannot be taken as it is (the detail says why).",
    403: "Refused: the CSRF token is missing or out of date (GET /api/v1/csrf gives one), or "
    "what is asked is turned off here (the detail says which).",
    404: "What the path names does not exist.",
    409: "The request conflicts with the current state (the detail says with what).",
    413: "The request body is larger than the server takes.",
    422: "A parameter or the body is not valid: which one and why.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the ``ErrorOut`` body."""
    return {code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]} for code in codes}


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _declare_errors(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorOut"] = ErrorOut.model_json_schema()
    for path, operations in document.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes = [404] if "{" in path else []  # each path parameter names something
            if "requestBody" in operation:
                codes.append(400)  # a body that cannot be read (not UTF-8, broken multipart)
            if method.upper() not in SAFE_METHODS:
                codes.append(403)  # every API router depends on require_csrf
            if "422" in responses or operation.get("parameters") or operation.get("requestBody"):
                # Replaces FastAPI's HTTPValidationError: the handler below answers ErrorOut.
                responses.pop("422", None)
                codes.append(422)
            for code in codes:
                responses.setdefault(
                    str(code),
                    {
                        "description": ERROR_MEANINGS[code],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
    text = json.dumps(document["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"/{name}" not in text:
            schemas.pop(name, None)


def document_errors(app: FastAPI) -> None:
    """Declare on each API operation of the OpenAPI document the errors every route of its kind
    answers: 422 where it takes input, 404 where a path names something, 403 on writes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _declare_errors(build())  # FastAPI keeps what it builds in app.openapi_schema
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


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
    if error.get("type") == "missing" and tuple(error["loc"]) == ("body",):
        return "the request body is missing: send a JSON object"
    return f"{_field(tuple(error['loc']))}: {error['msg']}"


def install_error_handlers(app: FastAPI) -> None:
    """Map errors to responses (see ``_render``) and declare them in the OpenAPI document."""
    document_errors(app)

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
