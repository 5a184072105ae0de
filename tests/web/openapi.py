"""What the OpenAPI document declares about an answer (found by fuzzing: tests/fuzz)."""

from __future__ import annotations

import httpx

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


async def assert_documented_error(
    client: httpx.AsyncClient, response: httpx.Response, path: str
) -> None:
    """``response``, an error of the operation at ``path`` (its template, such as
    ``/api/v1/projects/{name}``), has a status the document declares there, with the
    ``ErrorOut`` body it has: a ``detail`` saying what was wrong."""
    document = (await client.get("/openapi.json")).json()
    method = response.request.method.lower()
    declared = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method.upper()} {path}: {status} not among {sorted(declared)}"
    assert declared[status]["content"]["application/json"]["schema"] == ERROR_REF
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["detail"]
    assert error["properties"]["detail"]["type"] == "string"
    body = response.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
