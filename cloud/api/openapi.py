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
    responses = {op.response for op in operations if op.response is not OpenApiDocument}
    models = sorted(responses | {Problem}, key=lambda m: m.__name__)
    refs, top = models_json_schema(
        [(m, "serialization") for m in models], ref_template=REF_TEMPLATE
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        params = [
            {"name": name, "in": "path", "required": True, **spec}
            for name, spec in op.path_params.items()
        ]
        if op.query is not None:
            params += _query_parameters(op.query)
        if op.response is OpenApiDocument:
            ok_schema: dict[str, Any] = {"type": "object"}
        else:
            ok_schema = refs[(op.response, "serialization")]
        responses_doc: dict[str, Any] = {
            "200": {"description": "OK", "content": {"application/json": {"schema": ok_schema}}}
        }
        problem = {"schema": refs[(Problem, "serialization")]}
        for status in sorted({*op.errors, 500}):
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
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {})},
    }


def openapi_routes(resources: Iterable[ResourceRoutes]) -> ResourceRoutes:
    """Return the resource serving the document for ``resources`` and itself."""
    resources = list(resources)
    api = ResourceRoutes("meta")

    @api.get(OPENAPI_PATH, summary="This OpenAPI document", response=OpenApiDocument)
    async def openapi(request: web.Request) -> web.Response:
        ops = [op for r in [*resources, api] for op in r.operations]
        return web.json_response(build_openapi(ops, "Fleetlink cloud API", "1.0.0"))

    return api
