"""``/api/v1/openapi.json``: an OpenAPI 3.1 document generated from the routes' models."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from fleetlink.cloud.api.models import Problem
from fleetlink.cloud.api.spec import Operation, ResourceRoutes

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_PATH = "/api/v1/openapi.json"


SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (flt_…) from POST /api/v1/tokens or `fleetlink cloud "
        "token create`",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "fl_session",
        "description": "The session of POST /api/v1/auth/login; unsafe methods also need the "
        "session's CSRF token in X-CSRF-Token",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"bearerToken": []}, {"sessionCookie": []}]


IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": "The ETag of the version being changed ('*': any); 412 if it changed since",
    "schema": {"type": "string", "minLength": 1},
}


class OpenApiDocument(BaseModel):
    """Marker for the document's own route; its body is the OpenAPI object itself."""


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.pop("description", ""),
            "schema": prop,
        }
        for name, prop in schema["properties"].items()
    ]


def build_openapi(operations: Iterable[Operation], title: str, version: str) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing ``operations``."""
    operations = list(operations)
    responses = {op.response for op in operations if op.response not in (OpenApiDocument, None)}
    bodies = sorted({op.body for op in operations if op.body is not None}, key=lambda m: m.__name__)
    models = sorted(responses | {Problem}, key=lambda m: m.__name__)
    refs, top = models_json_schema(
        [(m, "serialization") for m in models] + [(b, "validation") for b in bodies],
        ref_template=REF_TEMPLATE,
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        params = [
            {"name": name, "in": "path", "required": True, **spec}
            for name, spec in op.path_params.items()
        ]
        if op.query is not None:
            params += _query_parameters(op.query)
        if op.if_match:
            params.append(IF_MATCH)
        if op.response_media_type.startswith("text/"):
            ok_schema: dict[str, Any] = {"type": "string", "description": op.summary}
        elif op.response is OpenApiDocument or op.response is None:
            ok_schema = {"type": "object"}
        else:
            ok_schema = refs[(op.response, "serialization")]
        if op.response_media_type != "application/json":
            ok_schema = {"type": "string"}
        ok: dict[str, Any] = {
            "description": HTTPStatus(op.status).phrase,
            "content": {op.response_media_type: {"schema": ok_schema}},
        }
        if op.headers:
            ok["headers"] = {
                name: {"description": spec["description"], "schema": spec["schema"]}
                for name, spec in op.headers.items()
            }
        responses_doc: dict[str, Any] = {str(op.status): ok}
        problem = {"schema": refs[(Problem, "serialization")]}
        guarded = () if op.public else (401, 403, 429)
        for status in sorted({*op.errors, *guarded, 500}):
            responses_doc[str(status)] = {
                "description": HTTPStatus(status).phrase,
                "content": {"application/problem+json": problem},
            }
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "tags": [op.tag] if op.tag else [],
            "responses": responses_doc,
        }
        if params:
            entry["parameters"] = params
        if op.body is not None:
            body_schema = (
                {"type": "string", "description": op.body.__doc__ or ""}
                if op.body_media_type.startswith("text/")
                else refs[(op.body, "validation")]
            )
            entry["requestBody"] = {
                "required": True,
                "content": {op.body_media_type: {"schema": body_schema}},
            }
        entry["security"] = [] if op.public else SECURITY
        if op.permission is not None:
            entry["description"] = f"Needs the permission `{op.permission.value}`."
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
    }


def openapi_routes(resources: Iterable[ResourceRoutes]) -> ResourceRoutes:
    """Return the resource serving the document for ``resources`` and itself."""
    resources = list(resources)
    api = ResourceRoutes("meta")

    @api.get(OPENAPI_PATH, summary="This OpenAPI document", response=OpenApiDocument, public=True)
    async def openapi(request: web.Request) -> web.Response:
        ops = [op for r in [*resources, api] for op in r.operations]
        return web.json_response(build_openapi(ops, "Fleetlink cloud API", "1.0.0"))

    return api
