"""Configuration of the cloud service, read from ``FLEETLINK_*`` environment variables."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetlink.shared.netaddr import is_loopback

DEMO_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/fleetlink"
DEMO_MQTT_URL = "mqtt://127.0.0.1:1883"


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
    # Where the ingest reads device messages: "mqtt" subscribes on FLEETLINK_MQTT_URL (an MQTT 5
    # shared subscription splits the load); "nats" pulls from a JetStream consumer shared by
    # every ingest process, for a NATS cluster whose MQTT gateway speaks 3.1.1 only
    # (docs/scaling.md).
    ingest_source: Literal["mqtt", "nats"] = "mqtt"
    # Comma-separated nats:// URLs of the cluster's nodes (credentials in the first one apply).
    nats_url: SecretStr = SecretStr("nats://127.0.0.1:4222")
    nats_stream: str = Field("FLEETLINK_INGEST", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    nats_consumer: str = Field("fleetlink-ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # 3 on a three-node cluster: the stream then survives the loss of one node.
    nats_stream_replicas: int = Field(1, ge=1, le=5)
    # A message not acked this long after delivery (its worker died) goes to another worker.
    nats_ack_wait_s: float = Field(30.0, ge=1.0, le=3600.0)
    ingest_max_batches: int = Field(200, ge=1, le=10_000)
    ingest_max_wait_ms: int = Field(50, ge=0, le=10_000)
    ingest_queue_size: int = Field(2000, ge=1)
    # The in-flight window (docs/observability.md): unacked deliveries the broker may send
    # each worker (MQTT v5 receive maximum; the broker's own per-client limit applies too),
    # and unacked ack publishes each worker may have towards the broker.
    mqtt_receive_maximum: int = Field(65535, ge=1, le=65535)
    mqtt_publish_inflight: int = Field(1000, ge=1, le=65535)
    # The QoS of the acks to devices (D100): 0 by default, since a lost ack only costs a
    # resend that the ``ingested_batches`` guard re-acks; 1 has the broker keep them for a
    # device that dropped before they arrived, at two more packets per ack.
    mqtt_ack_qos: Literal[0, 1] = 0
    # ``fleetlink cloud ingest``: ingest processes and the first of their metrics ports.
    ingest_processes: int = Field(1, ge=1, le=64)
    ingest_metrics_port: int = Field(9108, ge=0, le=65535)
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
    db_pool_size: int = Field(8, ge=1, le=100)
    # The API's connections run as the role fleetlink_api: through this URL's own login where
    # given (recommended in production), else by SET ROLE on the owner's connections.
    api_database_url: SecretStr | None = None
    api_pool_size: int = Field(8, ge=1, le=100)
    api_statement_timeout_ms: int = Field(5000, ge=100, le=600_000)
    api_max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    api_rate_per_s: float = Field(50.0, gt=0)
    api_rate_burst: int = Field(200, ge=1)
    login_rate_per_min: float = Field(10.0, gt=0)
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # How long a replica trusts a looked-up API token before asking the database again; a
    # token revoked on another replica keeps working that long at most.
    token_cache_s: float = Field(5.0, ge=0, le=300)
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    # The portal's map draws tiles behind positions when set, e.g.
    # "https://tiles.example.org/{z}/{x}/{y}.png"; its origin is added to the pages' CSP.
    portal_tile_url: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s]+$")
    # Keys of the drivers' personal fields: "id:base64-key,..." (the first encrypts).
    field_keys: SecretStr | None = None
    # Live updates (SSE): each client's queue and each tenant's replay buffer, in messages.
    live_queue_size: int = Field(256, ge=1, le=100_000)
    live_replay_size: int = Field(1024, ge=0, le=1_000_000)
    # After a tenant's last live client leaves, its messages are still made (and kept for a
    # resume) this long; then nothing is made for it until a client comes (D104).
    live_idle_grace_s: float = Field(60.0, ge=0, le=86_400)
    # Young-generation threshold of the garbage collector once the process has started
    # (D105): `cloud serve`'s, and `cloud ingest`'s, which holds a whole in-flight window of
    # messages and so needs a higher one (D106); 0 keeps CPython's defaults.
    gc_young_threshold: int = Field(50_000, ge=0, le=10_000_000)
    ingest_gc_young_threshold: int = Field(500_000, ge=0, le=10_000_000)
    live_ping_s: float = Field(15.0, gt=0, le=3600)
    # What a live client's socket has not taken yet; beyond this the client is dropped.
    live_client_buffer_bytes: int = Field(1024 * 1024, ge=4096, le=256 * 1024 * 1024)
    # A write to a live client that does not finish in this time drops the client.
    live_send_timeout_s: float = Field(10.0, gt=0, le=600)
    # "local": live messages go from the ingest to this process's clients only. "postgres":
    # every process sends them with NOTIFY and every API process listens (several processes
    # or replicas; `fleetlink cloud serve --processes N` sets it). "auto": postgres when this
    # process runs no ingest worker (the ingest runs elsewhere), else local.
    live_relay: Literal["auto", "local", "postgres"] = "auto"
    # The periodic jobs (trip recompute, reports, retention), the notification dispatchers and
    # the geofence monitor; API-only replicas set it false so they run once, elsewhere.
    background_jobs: bool = True
    geofence_queue_size: int = Field(10_000, ge=1)
    # Webhook URLs on loopback or private networks: refused in production mode unless set true;
    # allowed in demo mode (tests, a laptop) unless set false.
    webhook_allow_private: bool | None = None
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(5.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(3600.0, gt=0, le=86_400)
    notify_poll_s: float = Field(1.0, gt=0, le=60)
    # Email: smtp://user:password@host:port (STARTTLS when offered) or smtps:// (TLS).
    smtp_url: SecretStr | None = None
    smtp_from: str = Field("fleetlink@localhost", max_length=320)
    # Enrollment and per-device broker identity (docs/security.md). The broker URL devices are
    # told at enrollment (default: FLEETLINK_MQTT_URL without its credentials).
    device_mqtt_url: str = ""
    enrollment_token_hours: float = Field(24.0, ge=0.01, le=24 * 90)
    # Where the cloud writes mosquitto's password file and ACL after every enrollment, swap or
    # removal (unset: not written), the service users' own password lines it starts from, and
    # the pid file of the mosquitto it then sends SIGHUP.
    broker_passwd_file: Path | None = None
    broker_acl_file: Path | None = None
    broker_service_passwd_file: Path | None = None
    broker_pid_file: Path | None = None
    # The Ed25519 key (64 hex characters) that signs updates; `fleetlink cloud keys update-key`.
    update_signing_key: SecretStr | None = None
    # The recompute worker: how often it looks for marked (vehicle, day)s (0: never, e.g. a
    # replica that only serves the API), and how long a day's first mark waits so that a
    # vehicle streaming live is recomputed at most that often.
    trips_recompute_every_s: float = Field(2.0, ge=0, le=3600)
    trips_settle_s: float = Field(5.0, ge=0, le=3600)
    # Scheduled reports and retention: how often each looks for work (0: never).
    reports_every_s: float = Field(60.0, ge=0, le=86_400)
    retention_every_s: float = Field(3600.0, ge=0, le=7 * 86_400)
    # Compaction of closed days into hourly blocks (native backend, D91): how often it looks,
    # and how many days back a day counts as closed (late data after that is merged later).
    compact_every_s: float = Field(3600.0, ge=0, le=7 * 86_400)
    compact_after_days: int = Field(2, ge=1, le=36_500)
    log_json: bool = False
    log_level: str = "INFO"

    @property
    def webhooks_may_call_private(self) -> bool:
        """Return whether webhook URLs may name loopback or private addresses."""
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return self.mode != "production"

    @field_validator("nats_url")
    @classmethod
    def _nats_urls(cls, value: SecretStr) -> SecretStr:
        for url in value.get_secret_value().split(","):
            parts = urlsplit(url.strip())
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(
                    "FLEETLINK_NATS_URL must be comma-separated nats://[user:password@]host:port"
                )
        return value

    @field_validator("update_signing_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
        if self.field_keys is None or not self.field_keys.get_secret_value().strip():
            raise SettingsError(
                "FLEETLINK_FIELD_KEYS: production mode needs the key ring of drivers' personal "
                "fields (fleetlink cloud keys new prints one)"
            )
        return self

    def devices_mqtt_url(self) -> str:
        """Return the broker URL given to devices at enrollment (never with credentials)."""
        if self.device_mqtt_url:
            return self.device_mqtt_url
        parts = urlsplit(self.mqtt_url.get_secret_value())
        host = parts.hostname or "127.0.0.1"
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))

    def service_mqtt_user(self) -> str:
        """Return the cloud's own broker username (the ingest's), "ingest" if none is set."""
        return urlsplit(self.mqtt_url.get_secret_value()).username or "ingest"

    def database_dsn(self) -> str:
        """Return the database URL with its password, for the driver only."""
        return self.database_url.get_secret_value()

    def api_dsn(self) -> tuple[str, dict[str, str]]:
        """Return the API pool's URL and the server settings its connections start with."""
        server_settings = {
            "statement_timeout": str(self.api_statement_timeout_ms),
            "role": "fleetlink_api",
        }
        url = self.api_database_url or self.database_url
        return url.get_secret_value(), server_settings

    def nats_servers(self) -> list[str]:
        """Return the NATS server URLs of ``nats_url`` (comma-separated), in order."""
        return [u.strip() for u in self.nats_url.get_secret_value().split(",") if u.strip()]

    def relays_live(self) -> bool:
        """Return True if live messages travel through PostgreSQL NOTIFY (``live_relay``)."""
        if self.live_relay == "auto":
            return self.ingest_workers == 0
        return self.live_relay == "postgres"

    def describe(self) -> dict[str, object]:
        """Return the settings as a dict fit for logging: passwords and keys redacted."""
        data = self.model_dump(mode="json")
        data["database_url"] = redact_url(self.database_url.get_secret_value())
        data["mqtt_url"] = redact_url(self.mqtt_url.get_secret_value())
        data["nats_url"] = ",".join(redact_url(u) for u in self.nats_servers())
        if self.api_database_url is not None:
            data["api_database_url"] = redact_url(self.api_database_url.get_secret_value())
        data["field_keys"] = "***" if self.field_keys is not None else None
        if self.smtp_url is not None:
            data["smtp_url"] = redact_url(self.smtp_url.get_secret_value())
        data["update_signing_key"] = "***" if self.update_signing_key is not None else None
        return data
