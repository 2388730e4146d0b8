"""Read the portal's "New circular geofence" form as the API's GeoJSON Feature (a Point with
``radius_m``), and put the refusals next to the form's fields."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fleetlink.cloud.api.geofences import GeofenceIn
from fleetlink.cloud.portal.form_errors import sentence

FIELDS = ("name", "latitude", "longitude", "radius_m", "speed_limit_kmh", "dwell_s")
_OPTIONAL = ("speed_limit_kmh", "dwell_s")
_RANGES = {"latitude": 90.0, "longitude": 180.0}


class GeofenceFormError(ValueError):
    """The form's fields that do not fit, as ``{field name: message}``."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def circle_from_form(form: dict[str, str]) -> GeofenceIn:
    """Return the circle the form describes as the API's GeofenceIn.

    Raises GeofenceFormError naming each field that is not a number, a centre off the globe,
    or what the API's model refuses (an empty name, a radius of 0…).
    """
    errors: dict[str, str] = {}
    numbers: dict[str, Any] = {}
    for name in FIELDS[1:]:
        raw = form.get(name, "").strip()
        if not raw and name in _OPTIONAL:
            numbers[name] = None
            continue
        try:
            numbers[name] = float(raw)
        except ValueError:
            errors[name] = "Enter a number." if not raw else f"{raw!r} is not a number."
            continue
        limit = _RANGES.get(name)
        if limit is not None and not -limit <= numbers[name] <= limit:
            errors[name] = f"The {name} must be from {-limit:.0f} to {limit:.0f}."
    feature = {
        "type": "Feature",
        "geometry": {
            "type": "Point",
            "coordinates": [numbers.get("longitude", 0.0), numbers.get("latitude", 0.0)],
        },
        "properties": {
            "name": form.get("name", "").strip(),
            "radius_m": numbers.get("radius_m"),
            "speed_limit_kmh": numbers.get("speed_limit_kmh"),
            "dwell_s": numbers.get("dwell_s"),
        },
    }
    try:
        body = GeofenceIn.model_validate(feature)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = [str(p) for p in error["loc"]]
            field = loc[1] if loc[:1] == ["properties"] and len(loc) > 1 else "form"
            if field not in errors:
                errors[field] = sentence(error["msg"])
        raise GeofenceFormError(errors) from None
    if errors:
        raise GeofenceFormError(errors)
    return body
