"""A RouteTableDef that also records each route's models and permission, for the OpenAPI
document and for the access check every non-public route passes through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from fleetlink.cloud.api.access import guard
from fleetlink.cloud.api.problems import Handler
from fleetlink.cloud.auth.permissions import Permission


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    response: type[BaseModel] | None
    query: type[BaseModel] | None = None
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    tag: str = ""
    body: type[BaseModel] | None = None
    permission: Permission | None = None
    public: bool = False
    status: int = 200
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_media_type: str = "application/json"
    if_match: bool = False
    response_media_type: str = "application/json"


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _uuid_segments(path: str, params: dict[str, dict[str, Any]]) -> str:
    """Return ``path`` with its UUID parameters matching only UUIDs, so that a sibling route
    (``/vehicles/facets``) is never taken for an id and answers 405 to other methods."""
    for name, spec in params.items():
        if spec.get("schema", {}).get("format") == "uuid":
            path = path.replace(f"{{{name}}}", f"{{{name}:{_UUID}}}")
    return path


class ResourceRoutes:
    """The routes of one resource module: ``routes`` for aiohttp, ``operations`` for OpenAPI.

    Every route either names the permission it needs (the caller must be authenticated and
    allowed; see :mod:`fleetlink.cloud.api.access`) or says it is ``public``.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes = web.RouteTableDef()
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        response: type[BaseModel] | None,
        permission: Permission | None = None,
        public: bool = False,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        path_params: dict[str, dict[str, Any]] | None = None,
        errors: tuple[int, ...] = (),
        status: int = 200,
        headers: dict[str, dict[str, Any]] | None = None,
        body_media_type: str = "application/json",
        if_match: bool = False,
        response_media_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        """Register a handler and describe it; return the handler unchanged."""
        if (permission is None) != public:
            raise ValueError(f"{method} {path}: name a permission, or say public=True")

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method.lower(),
                    path,
                    summary,
                    response,
                    query,
                    path_params or {},
                    errors,
                    self.tag,
                    body,
                    permission,
                    public,
                    status,
                    headers or {},
                    body_media_type,
                    if_match,
                    response_media_type,
                )
            )
            wrapped = handler if permission is None else guard(handler, permission)
            matched = _uuid_segments(path, path_params or {})
            if method.upper() == "GET":
                self.routes.get(matched, allow_head=False)(wrapped)
            else:
                self.routes.route(method.upper(), matched)(wrapped)
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kwargs)
