"""Device configuration: a TOML file validated by pydantic models.

A broken file stops start-up: :func:`load_config` raises :class:`ConfigError` naming the
file and the field (``device.toml: obd.poll[1].rate_hz: must be > 0``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from fleetlink.edge.alerts.settings import AlertsSection
from fleetlink.edge.outbox import DEFAULT_MAX_BYTES
from fleetlink.firmware_profiles import (
    AUTO_PROFILE,
    DEFAULT_PROFILE,
    PidRate,
    PollGroup,
    Profile,
    ProfileError,
    load_can_profile,
    load_profile,
)
from fleetlink.shared.codec import COMPRESS_ABOVE_BYTES
from fleetlink.shared.messages import MAX_SAMPLES_PER_BATCH
from fleetlink.shared.netaddr import is_loopback
from fleetlink.shared.signing import DeviceKeyError, parse_key
from fleetlink.shared.topics import TopicError, check_segment
from fleetlink.shared.validation import describe_errors

PositiveFloat = Annotated[float, Field(gt=0)]


class ConfigError(ValueError):
    """Raised for a device configuration that cannot be read or is not valid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSection(_Section):
    id: str
    tenant: str
    key: SecretStr | None = Field(
        default=None,
        description="the device's own 64-hex-character key (from `fleetlink cloud device add`, "
        "later from enrollment); with it the agent acts only on acks the cloud signed",
    )

    @field_validator("key")
    @classmethod
    def _key_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_key(value.get_secret_value())
            except DeviceKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    def key_bytes(self) -> bytes | None:
        return None if self.key is None else parse_key(self.key.get_secret_value())

    @field_validator("id", "tenant")
    @classmethod
    def _topic_segment(cls, value: str) -> str:
        try:
            return check_segment(value, "value")
        except TopicError as exc:
            raise ValueError(str(exc).removeprefix("value ")) from None


class MqttSection(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=65535)] = 60
    tls: bool = False
    ack_timeout_s: PositiveFloat = 30.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 20
    drain_on_stop_s: Annotated[float, Field(ge=0)] = 3.0
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    # paho doubles the wait between reconnects from min to max; max 4 s means the agent is
    # back within 5 s of the broker's return.
    reconnect_min_s: Annotated[int, Field(ge=1, le=3600)] = 1
    reconnect_max_s: Annotated[int, Field(ge=1, le=3600)] = 4
    # MQTT 5 only: how long the broker keeps this device's session (its ack subscription and
    # queued acks) and each published message while the other side is away.
    session_expiry_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 86_400
    message_expiry_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 86_400
    allow_plaintext_remote: bool = Field(
        default=False,
        description="allow mqtt:// (no TLS) to a broker that is not on this machine",
    )
    subscribe_qos: Literal[0, 1] = Field(
        default=1,
        description="QoS of the ack, command and geofence subscriptions; 0 for NATS's MQTT "
        "gateway, which delivers what the cloud publishes there at QoS 0 anyway and would "
        "spend a JetStream consumer on each QoS 1 subscription (docs/scaling.md)",
    )
    failover_urls: list[str] = Field(
        default_factory=list,
        description="other nodes of the same broker cluster, tried in turn after url when the "
        "connection is lost or refused",
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        return _checked_mqtt_url(value)

    @field_validator("failover_urls")
    @classmethod
    def _failover_urls(cls, value: list[str]) -> list[str]:
        return [_checked_mqtt_url(url) for url in value]

    @model_validator(mode="after")
    def _no_plaintext_to_remote_brokers(self) -> MqttSection:
        for url in self.urls:
            host = urlsplit(url).hostname or ""
            plaintext = not self.url_uses_tls(url) and not is_loopback(host)
            if plaintext and not self.allow_plaintext_remote:
                raise ValueError(
                    f"url: {url} sends credentials and data unencrypted to another "
                    "machine; use mqtts:// (or tls = true), or set allow_plaintext_remote = true"
                )
        return self

    @property
    def urls(self) -> list[str]:
        """Return ``url`` followed by the failover URLs: the order brokers are tried in."""
        return [self.url, *self.failover_urls]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return self.endpoint(self.url)[1]

    @property
    def use_tls(self) -> bool:
        return self.url_uses_tls(self.url)

    def url_uses_tls(self, url: str) -> bool:
        """Return True if the connection to ``url`` uses TLS (mqtts://, or tls = true)."""
        return self.tls or urlsplit(url).scheme == "mqtts"

    def endpoint(self, url: str) -> tuple[str, int]:
        """Return (host, port) of one of ``urls``."""
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or (8883 if self.url_uses_tls(url) else 1883)


def _checked_mqtt_url(value: str) -> str:
    """Return ``value`` if it is an mqtt:// or mqtts:// URL with a host; raises ValueError."""
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://host:port or mqtts://host:port")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return value


class ObdSection(_Section):
    port: str
    baudrate: Annotated[int, Field(gt=0)] | None = None
    protocol: str | None = None
    timeout_s: PositiveFloat = Field(
        default=1.0, description="deadline of one request; nothing retries or stretches it"
    )
    stall_after_s: PositiveFloat = Field(
        default=3.0,
        description="an adapter that owes an answer this long is stalled (reported, probed "
        "until it answers again)",
    )
    battery_rate_hz: Annotated[float, Field(ge=0)] = 0.2
    reconnect_min_s: PositiveFloat = 1.0
    reconnect_max_s: PositiveFloat = 60.0
    no_data_rounds: Annotated[int, Field(ge=1)] = 3
    profile: str = Field(
        default=AUTO_PROFILE,
        description="firmware profile (shipped id or .toml path) whose PIDs are read when "
        "this section lists no poll groups of its own; 'auto': the shipped profile that best "
        "fits the vehicle's VIN and protocol, chosen at connect",
    )
    poll: list[PollGroup] = Field(default_factory=list)
    strategy: Literal["multi_pid", "one_pid"] = Field(
        default="multi_pid",
        description="multi_pid: up to six mode 01 PIDs per request on CAN; one_pid: one each",
    )
    tune_timing: bool = Field(
        default=True, description="ask the adapter for the profile's ELM timing (ATAT/ATST)"
    )
    low_voltage_v: Annotated[float, Field(ge=0, le=60)] = Field(
        default=11.8,
        description="below this voltage at the OBD port polling stops to spare the battery "
        "(resumes 0.3 V above it); 0 turns the protection off",
    )
    dtc_interval_s: Annotated[float, Field(ge=0)] = Field(
        default=60.0,
        description="read the MIL and stored trouble codes this often while polling (0: never)",
    )
    can_quiet_s: PositiveFloat = Field(
        default=5.0,
        description="with a CAN source: a bus silent this long means the ignition is off",
    )
    obdb_dir: Path = Field(
        default=Path("/usr/share/fleetlink/obdb"),
        description="where the installer put the OBDb vehicle folders a profile's [obd.obdb] "
        "signalsets name (<obdb_dir>/<name>/signalsets/v3/default.json)",
    )
    signalsets: list[Path] = Field(
        default_factory=list,
        description="OBDb signalset files, most specific first, polled instead of the "
        "profile's [obd.obdb] signalsets (empty: the profile's)",
    )
    model_year: Annotated[int, Field(ge=1980, le=2100)] | None = Field(
        default=None,
        description="model year for the signalsets (default: the profile's, else the VIN's)",
    )
    obdb_commands: Literal["published", "all"] = Field(
        default="published",
        description="published: poll only mode 22 commands with a signal the catalog carries; "
        "all: every command (the others' values are decoded and counted, not sent)",
    )

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str) -> str:
        if value == AUTO_PROFILE:
            return value
        try:
            profile = load_profile(value)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        if profile.obd is None:
            raise ValueError(f"profile {value}: has no [obd] section (a CAN-only profile)")
        return value

    def signalset_files(self, profile: Profile) -> list[Path]:
        """Return the OBDb signalset files to poll for ``profile``, most specific first:
        this section's ``signalsets``, else the profile's under ``obdb_dir`` ([] for none)."""
        if self.signalsets:
            return list(self.signalsets)
        if profile.obd is None or profile.obd.obdb is None:
            return []
        return [
            self.obdb_dir / name / "signalsets" / "v3" / "default.json"
            for name in profile.obd.obdb.signalsets
        ]

    def fixed_profile(self) -> Profile | None:
        """Return the profile this section names, None when it is chosen at connect."""
        return None if self.profile == AUTO_PROFILE else load_profile(self.profile)

    def poll_groups(self) -> list[PollGroup]:
        """Return the poll groups to read: this section's own, else its profile's (the
        fallback profile's while the profile is chosen at connect)."""
        return self.poll or (self.fixed_profile() or load_profile(DEFAULT_PROFILE)).poll_groups

    def schedule(self, profile: Profile) -> list[PidRate]:
        """Return the commands to poll with their rates: this section's own groups, else
        ``profile``'s groups and PIDs."""
        if self.poll:
            return [
                PidRate(command=c, rate_hz=g.rate_hz, priority=g.priority)
                for g in self.poll
                for c in g.commands
            ]
        return profile.obd.schedule() if profile.obd is not None else []


CanInterface = Literal["socketcan", "slcan", "virtual"]
RECORD_SUFFIXES = (".log", ".asc", ".blf")


class CanSection(_Section):
    """The CAN bus the agent listens to; the profile supplies the DBC files and the mapping
    (and the interface, channel and bitrate this section does not set)."""

    profile: str = Field(description="firmware profile (shipped id or .toml path) with [can]")
    interface: CanInterface | None = None
    channel: str | None = None
    bitrate: Annotated[int, Field(gt=0)] | None = None
    silent_after_s: PositiveFloat = Field(
        default=2.0, description="no frame for this long: the bus is silent (ignition off?)"
    )
    reconnect_min_s: PositiveFloat = 1.0
    reconnect_max_s: PositiveFloat = 60.0
    record: Path | None = Field(
        default=None,
        description="also record every frame to this file: .log (candump), .asc or .blf",
    )

    @field_validator("profile")
    @classmethod
    def _profile_has_can(cls, value: str) -> str:
        try:
            load_can_profile(value)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("record")
    @classmethod
    def _record_format(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix.lower() not in RECORD_SUFFIXES:
            raise ValueError(f"must end in one of {', '.join(RECORD_SUFFIXES)}")
        return value


class OutboxSection(_Section):
    path: Path
    batch_interval_s: PositiveFloat = 1.0
    # While the uplink is offline, batches grow to this age (D34).
    offline_batch_interval_s: PositiveFloat = 60.0
    max_batch_samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES_PER_BATCH)] = 3000
    compress_above_bytes: Annotated[int, Field(ge=0)] = COMPRESS_ABOVE_BYTES
    max_bytes: Annotated[int, Field(ge=16 * 1024)] = DEFAULT_MAX_BYTES


class GpsSection(_Section):
    """A GNSS receiver: NMEA sentences on a serial port, or a gpsd."""

    nmea_port: str | None = Field(
        default=None, description="serial port of an NMEA 0183 receiver (/dev/ttyACM0, a pty)"
    )
    baudrate: Annotated[int, Field(gt=0)] = 9600
    gpsd: str | None = Field(default=None, description="host:port of a gpsd (127.0.0.1:2947)")
    rate_hz: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _one_receiver(self) -> GpsSection:
        if (self.nmea_port is None) == (self.gpsd is None):
            raise ValueError("set exactly one of nmea_port and gpsd")
        return self


class CloudSection(_Section):
    api_url: str = Field(description="the cloud's HTTP API (install reports go there)")

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like https://host[:port]")
        return value.rstrip("/")


class UpdatesSection(_Section):
    public_key: str = Field(description="the cloud's Ed25519 update key (64 hex characters)")
    dir: Path = Field(description="where applied updates are kept (relative: to this file)")

    @field_validator("public_key")
    @classmethod
    def _hex_key(cls, value: str) -> str:
        from fleetlink.shared.updates import UpdateKeyError, public_key

        try:
            public_key(value)
        except UpdateKeyError as exc:
            raise ValueError(str(exc)) from None
        return value


class AnomalySection(_Section):
    """On-device anomaly models: the ``[[models]]`` of a firmware profile, scored live."""

    enabled: bool = True
    profile: str | None = Field(
        default=None,
        description="profile (shipped id or .toml path) whose [[models]] run; default: the "
        "profile [obd] or [can] names (none while [obd] chooses its profile at connect)",
    )
    consecutive_windows: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None,
        description="windows in a row over the threshold before an anomaly event; "
        "default: the model card's",
    )

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            load_profile(value)
        except ProfileError as exc:
            raise ValueError(str(exc)) from None
        return value


class LogSection(_Section):
    json_output: bool = Field(default=False, alias="json")
    level: str = "INFO"


class MetricsSection(_Section):
    """Prometheus metrics on 127.0.0.1 (docs/observability.md); 0, the default, is off."""

    port: Annotated[int, Field(ge=0, le=65535)] = 0


class DeviceConfig(_Section):
    """The whole device configuration file."""

    device: DeviceSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    obd: ObdSection | None = None
    can: CanSection | None = None
    gps: GpsSection | None = None
    outbox: OutboxSection
    cloud: CloudSection | None = None
    updates: UpdatesSection | None = None
    anomaly: AnomalySection = Field(default_factory=AnomalySection)
    log: LogSection = Field(default_factory=LogSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)


def parse_config(data: dict[str, Any], source: str = "<config>") -> DeviceConfig:
    """Return ``data`` validated as a :class:`DeviceConfig`.

    Raises:
        ConfigError: one line per invalid field, each ``source: field: problem``.
    """
    try:
        config = DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source)) from None
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge_secrets(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Merge the sections of the file named by ``secrets_file`` (passwords and keys, mode
    0600, written by provisioning) into ``data``; a group- or world-readable one is refused."""
    name = data.pop("secrets_file", None)
    if name is None:
        return data
    if not isinstance(name, str):
        raise ConfigError(f"{path}: secrets_file: must be a file name")
    secrets_path = Path(name) if Path(name).is_absolute() else path.parent / name
    try:
        mode = secrets_path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{secrets_path}: cannot read: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise ConfigError(
            f"{secrets_path}: readable by other users (mode {mode & 0o777:o}); "
            f"chmod 600 {secrets_path}"
        )
    for section, values in _read_toml(secrets_path).items():
        if not isinstance(values, dict) or not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{secrets_path}: {section}: must be a table")
        data[section] = {**data.get(section, {}), **values}
    return data


def load_config(path: str | Path) -> DeviceConfig:
    """Return the device configuration read from the TOML file at ``path``.

    A relative ``outbox.path``, ``can.record`` or ``updates.dir`` is taken relative to the
    configuration file's folder; ``secrets_file`` names a TOML file (mode 0600) whose sections
    are merged in.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a field is invalid; the
            message names the file and the field.
    """
    path = Path(path)
    config = parse_config(_merge_secrets(_read_toml(path), path), source=str(path))
    if not config.outbox.path.is_absolute():
        outbox = config.outbox.model_copy(update={"path": path.parent / config.outbox.path})
        config = config.model_copy(update={"outbox": outbox})
    if config.can is not None and config.can.record and not config.can.record.is_absolute():
        can = config.can.model_copy(update={"record": path.parent / config.can.record})
        config = config.model_copy(update={"can": can})
    if config.updates is not None and not config.updates.dir.is_absolute():
        updates = config.updates.model_copy(update={"dir": path.parent / config.updates.dir})
        config = config.model_copy(update={"updates": updates})
    return config
