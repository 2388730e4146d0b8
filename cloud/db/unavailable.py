"""Which database errors mean "the database cannot be reached right now" (retry later).

A terminated backend, a dropped socket, a refused connection or a server shutting down all
surface as different asyncpg or OS exception types; every one of them is transient from the
service's point of view: the ingest retries the chunk, the API answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncpg

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, CannotConnectNowError, …
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, pg_terminate_backend
    asyncpg.InterfaceError,  # connection closed under a query, pool closing
    asyncpg.InternalClientError,  # protocol state broken by a dropped connection
    asyncpg.TooManyConnectionsError,
    OSError,  # refused, reset, unreachable
    ConnectionError,
    TimeoutError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Return True if ``exc`` says the database cannot be reached, not that it refused data."""
    return isinstance(exc, DATABASE_UNAVAILABLE)
