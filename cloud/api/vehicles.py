"""``/api/v1/vehicles``: the tenant's vehicles."""

from __future__ import annotations

from aiohttp import web

from fleetlink.cloud.api.models import Vehicle, VehicleList
from fleetlink.cloud.api.problems import ProblemError
from fleetlink.cloud.api.request_parsing import path_uuid, tenant_of
from fleetlink.cloud.api.spec import ResourceRoutes
from fleetlink.cloud.app_keys import POOL

api = ResourceRoutes("vehicles")
routes = api.routes

VEHICLE_ID = {"description": "Vehicle UUID", "schema": {"type": "string", "format": "uuid"}}

_SELECT = """
    SELECT v.id, v.name, v.vin, v.created_at, a.device_id
    FROM vehicles v
    LEFT JOIN device_assignments a ON a.vehicle_id = v.id AND a.valid_to IS NULL
                                   AND a.tenant_id = v.tenant_id
    WHERE v.tenant_id = $1
"""


@api.get("/api/v1/vehicles", summary="List the vehicles", response=VehicleList)
async def list_vehicles(request: web.Request) -> web.Response:
    rows = await request.app[POOL].fetch(_SELECT + " ORDER BY v.name, v.id", tenant_of(request))
    body = VehicleList(items=[Vehicle.model_validate(dict(r)) for r in rows])
    return web.json_response(text=body.model_dump_json())


@api.get(
    "/api/v1/vehicles/{vehicle_id}",
    summary="One vehicle",
    response=Vehicle,
    path_params={"vehicle_id": VEHICLE_ID},
    errors=(400, 404),
)
async def get_vehicle(request: web.Request) -> web.Response:
    vehicle_id = path_uuid(request, "vehicle_id")
    row = await request.app[POOL].fetchrow(
        _SELECT + " AND v.id = $2 LIMIT 1", tenant_of(request), vehicle_id
    )
    if row is None:
        raise ProblemError(404, f"no vehicle {vehicle_id}")
    return web.json_response(text=Vehicle.model_validate(dict(row)).model_dump_json())
