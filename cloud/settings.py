"""Configuration of the cloud service, read from ``FLEETLINK_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetlink.shared.netaddr import is_loopback

DEMO_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/fleetlink"
DEMO_MQTT_URL = "mqtt://127.0.0.1:1883"
DEMO_TENANT = "demo"


class SharedSubscription(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class SettingsError(ValueError):
    """Raised when the settings cannot run in the chosen mode; the message names the field."""


MIN_PASSWORD_LENGTH = 12
_GUESSABLE = (
    "password",
    "passw0rd",
    "changeme",
    "change-me",
    "fleetlink",
    "postgres",
    "mosquitto",
    "secret",
    "admin",
    "letmein",
    "123456",
    "qwerty",
)


def password_weakness(password: str) -> str | None:
    """Return why ``password`` is too weak for production, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"shorter than {MIN_PASSWORD_LENGTH} characters"
    if len(set(password)) < 6:
        return "fewer than 6 different characters"
    lowered = password.lower()
    for word in _GUESSABLE:
        if word in lowered:
            return f"contains the guessable word {word!r}"
    return None


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class CloudSettings(BaseSettings):
    """Everything the cloud service needs to start; URLs are secrets because they hold passwords.

    Construction raises pydantic's ValidationError (wrapping SettingsError for the production
    checks) naming the offending ``FLEETLINK_*`` variable.
    """

    model_config = SettingsConfigDict(env_prefix="FLEETLINK_", extra="ignore")

    mode: Literal["demo", "production"] = "production"
    database_url: SecretStr = SecretStr(DEMO_DATABASE_URL)
    mqtt_url: SecretStr = SecretStr(DEMO_MQTT_URL)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    ingest_workers: int = Field(1, ge=0, le=32)
    shared_subscription: SharedSubscription = SharedSubscription.AUTO
    mqtt_client_id: str = ""
    mqtt_share_group: str = Field("ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # 0: a restarted worker starts clean and devices resend what was not acked. A persistent
    # session in a shared group keeps receiving its share while offline, so only use it for
    # workers that always come back.
    mqtt_session_expiry_s: int = Field(0, ge=0)
    ingest_max_batches: int = Field(200, ge=1, le=10_000)
    ingest_max_wait_ms: int = Field(50, ge=0, le=10_000)
    ingest_queue_size: int = Field(2000, ge=1)
    # The clock rule: batches whose times lie within this window around the cloud's clock are
    # stored, others quarantined (docs/security.md).
    ingest_accept_future_s: int = Field(3600, ge=0, le=366 * 86_400)
    ingest_accept_past_days: int = Field(400, ge=1, le=36_500)
    # A batch whose seq lies further than this beyond its device's high-water mark is refused.
    ingest_max_seq_jump: int = Field(10_000_000, ge=1_000, le=2**40)
    dead_letter_max_rows: int = Field(10_000, ge=1)
    dead_letter_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    dead_letter_retention_days: int = Field(14, ge=1)
    dead_letter_prune_every_s: float = Field(10.0, gt=0)
    # paho's reconnect backoff doubles from min to max; max 4 s reconnects within 5 s of the
    # broker's return.
    mqtt_reconnect_min_s: int = Field(1, ge=1, le=3600)
    mqtt_reconnect_max_s: int = Field(4, ge=1, le=3600)
    # The MQTT v5 user property in which the broker states each publisher's username (e.g. an
    # EMQX rule or a mosquitto plugin sets it); when set, only the topic's device may publish.
    mqtt_publisher_property: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    # Production refuses these unless explicitly allowed (docs/security.md).
    mqtt_allow_plaintext: bool = False
    api_allow_unauthenticated: bool = False
    api_tenant: str = DEMO_TENANT
    db_pool_size: int = Field(8, ge=1, le=100)
    log_json: bool = False
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _production_needs_real_credentials(self) -> CloudSettings:
        if self.mode != "production":
            return self
        db = urlsplit(self.database_url.get_secret_value())
        if self.database_url.get_secret_value() == DEMO_DATABASE_URL or not db.password:
            raise SettingsError(
                "FLEETLINK_DATABASE_URL: production mode needs a database URL with its own "
                "user and password, not the demo default"
            )
        mqtt = urlsplit(self.mqtt_url.get_secret_value())
        if not mqtt.username or not mqtt.password:
            raise SettingsError(
                "FLEETLINK_MQTT_URL: production mode needs MQTT credentials "
                "(mqtt://user:password@host:port)"
            )
        for variable, password in (("DATABASE_URL", db.password), ("MQTT_URL", mqtt.password)):
            weakness = password_weakness(password)
            if weakness:
                raise SettingsError(
                    f"FLEETLINK_{variable}: the password is too weak for production mode "
                    f"({weakness})"
                )
        if (
            mqtt.scheme == "mqtt"
            and not is_loopback(mqtt.hostname or "")
            and not (self.mqtt_allow_plaintext)
        ):
            raise SettingsError(
                f"FLEETLINK_MQTT_URL: plaintext mqtt:// to {mqtt.hostname} sends the password "
                "and data unencrypted; use mqtts://, or set FLEETLINK_MQTT_ALLOW_PLAINTEXT=true "
                "for a private network"
            )
        self.check_bind(self.http_host)
        return self

    def check_bind(self, host: str) -> None:
        """Raise SettingsError if production mode would serve the API beyond this machine
        without authentication (the API has none yet; see docs/security.md)."""
        if (
            self.mode == "production"
            and not is_loopback(host)
            and not (self.api_allow_unauthenticated)
        ):
            raise SettingsError(
                f"FLEETLINK_HTTP_HOST: binding {host} would serve the API without "
                "authentication beyond this machine; bind 127.0.0.1 behind an authenticating "
                "proxy, or set FLEETLINK_API_ALLOW_UNAUTHENTICATED=true"
            )

    def database_dsn(self) -> str:
        """Return the database URL with its password, for the driver only."""
        return self.database_url.get_secret_value()

    def describe(self) -> dict[str, object]:
        """Return the settings as a dict fit for logging: passwords redacted."""
        data = self.model_dump(mode="json")
        data["database_url"] = redact_url(self.database_url.get_secret_value())
        data["mqtt_url"] = redact_url(self.mqtt_url.get_secret_value())
        return data
