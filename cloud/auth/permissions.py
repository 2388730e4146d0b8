"""The permission table: what each role of a tenant's membership may do.

Every API operation names one permission; a request whose principal lacks it gets 403 (for an
operation on a resource the tenant has, which the principal can see exists) or, when the
resource belongs to another tenant, 404 from the tenant-scoped query before any check leaks it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    FLEET_MANAGER = "fleet_manager"
    TECHNICIAN = "technician"
    INSTALLER = "installer"
    DRIVER = "driver"
    VIEWER = "viewer"


class Permission(StrEnum):
    VEHICLES_READ = "vehicles:read"
    VEHICLES_WRITE = "vehicles:write"
    DRIVERS_READ = "drivers:read"
    DRIVERS_WRITE = "drivers:write"
    DRIVERS_PERSONAL = "drivers:personal"  # licence number, phone, export and erase
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    FLEETS_READ = "fleets:read"
    FLEETS_WRITE = "fleets:write"
    SIGNALS_READ = "signals:read"
    DIAGNOSTICS_READ = "diagnostics:read"  # vehicles' diagnostic reports
    DIAGNOSTICS_WRITE = "diagnostics:write"  # upload a report from the scan tool
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TOKENS_OWN = "tokens:own"  # create, list and revoke one's own API tokens
    TOKENS_ALL = "tokens:all"  # list and revoke anyone's
    AUDIT_READ = "audit:read"
    SEARCHES_OWN = "searches:own"
    ACCOUNT_READ = "account:read"  # one's own identity and permissions
    LIVE_READ = "live:read"  # the live stream of the tenant's signals, events and alerts
    INBOX_READ = "inbox:read"
    INBOX_WRITE = "inbox:write"  # acknowledge, assign, comment, coach
    NOTIFICATIONS_MANAGE = "notifications:manage"  # webhooks, their secrets, email rules
    GEOFENCES_READ = "geofences:read"
    GEOFENCES_WRITE = "geofences:write"
    MAINTENANCE_READ = "maintenance:read"  # plans, due list, work records, DTCs, risk
    MAINTENANCE_WRITE = "maintenance:write"
    COSTS_READ = "costs:read"  # spend, total cost of ownership, fuel recommendations
    COSTS_WRITE = "costs:write"  # fuel records and the price settings
    TRIPS_READ = "trips:read"  # trips, totals and CSV exports of trips and events
    SCORES_READ = "scores:read"  # scorecards, leaderboards, badges, challenges
    SCORING_WRITE = "scoring:write"  # scoring rules and challenges
    REPORTS_WRITE = "reports:write"  # scheduled reports and the tenant's retention policy


P = Permission
_READ_FLEET = {
    P.VEHICLES_READ,
    P.DRIVERS_READ,
    P.DEVICES_READ,
    P.FLEETS_READ,
    P.SIGNALS_READ,
    P.LIVE_READ,
    P.INBOX_READ,
    P.GEOFENCES_READ,
    P.TRIPS_READ,
    P.SCORES_READ,
    P.DIAGNOSTICS_READ,
}

_ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.FLEET_MANAGER: frozenset(
        _READ_FLEET
        | {
            P.VEHICLES_WRITE,
            P.DRIVERS_WRITE,
            P.DRIVERS_PERSONAL,
            P.DEVICES_WRITE,
            P.FLEETS_WRITE,
            P.DIAGNOSTICS_WRITE,
            P.USERS_READ,
            P.TOKENS_OWN,
            P.SEARCHES_OWN,
            P.INBOX_WRITE,
            P.NOTIFICATIONS_MANAGE,
            P.GEOFENCES_WRITE,
            P.MAINTENANCE_READ,
            P.MAINTENANCE_WRITE,
            P.COSTS_READ,
            P.COSTS_WRITE,
            P.SCORING_WRITE,
            P.REPORTS_WRITE,
        }
    ),
    Role.TECHNICIAN: frozenset(
        _READ_FLEET
        | {
            P.TOKENS_OWN,
            P.SEARCHES_OWN,
            P.MAINTENANCE_READ,
            P.MAINTENANCE_WRITE,
            P.DIAGNOSTICS_WRITE,
        }
    ),
    Role.INSTALLER: frozenset(
        {P.VEHICLES_READ, P.DEVICES_READ, P.DEVICES_WRITE, P.FLEETS_READ, P.SIGNALS_READ}
        | {P.TOKENS_OWN}
    ),
    Role.DRIVER: frozenset({P.VEHICLES_READ, P.SIGNALS_READ}),
    Role.VIEWER: frozenset(_READ_FLEET | {P.SEARCHES_OWN, P.MAINTENANCE_READ, P.COSTS_READ}),
}
ROLE_PERMISSIONS = {role: perms | {P.ACCOUNT_READ} for role, perms in _ROLE_PERMISSIONS.items()}


def allowed(
    role: Role, scopes: frozenset[str] | None, permission: Permission, safe: bool = True
) -> bool:
    """Return whether ``role`` may use ``permission``, in a request with a safe method (GET)
    or not, through a token with ``scopes`` (None: a session, where the role alone decides).

    A token scoped ``read`` makes only safe requests; ``write`` makes any its role allows.
    """
    if permission not in ROLE_PERMISSIONS[role]:
        return False
    if scopes is None or "write" in scopes:
        return True
    return "read" in scopes and safe
