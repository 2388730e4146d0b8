"""A RouteTableDef that also records each route's models, for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.problems import Handler


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type[BaseModel]
    query: type[BaseModel] | None = None
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    tag: str = ""


class ResourceRoutes:
    """The routes of one resource module: ``routes`` for aiohttp, ``operations`` for OpenAPI."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes = web.RouteTableDef()
        self.operations: list[Operation] = []

    def get(
        self,
        path: str,
        *,
        summary: str,
        response: type[BaseModel],
        query: type[BaseModel] | None = None,
        path_params: dict[str, dict[str, Any]] | None = None,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Register a GET handler and describe it; return the handler unchanged."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    "get", path, summary, response, query, path_params or {}, errors, self.tag
                )
            )
            self.routes.get(path, allow_head=False)(handler)
            return handler

        return register
