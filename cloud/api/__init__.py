"""The REST API under ``/api/v1``: one module per resource, each with its own RouteTableDef."""
