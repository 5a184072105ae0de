"""FastAPI dependencies: the stores and templates built by the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from app.domain.stores import Stores


def get_stores(request: Request) -> Stores:
    return request.app.state.stores  # type: ignore[no-any-return]


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates  # type: ignore[no-any-return]


StoresDep = Annotated[Stores, Depends(get_stores)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
