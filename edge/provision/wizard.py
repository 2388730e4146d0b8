"""The provisioning steps, in order, each recorded in the state file when done so that a rerun
continues where the last one stopped:

detect → adapter (probe, VIN) → vin (decode) → profile → enroll → broker (the new login
works) → config (written whole, secrets 0600) → service (systemd) → selftest (report
uploaded).

Nothing is written to the configuration before every earlier step succeeded, and an
enrollment is never repeated (its token is used up): its answer waits in the state file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetlink.edge.config import DeviceConfig, load_config
from fleetlink.edge.link.errors import LinkError
from fleetlink.edge.outbox import Outbox, OutboxError
from fleetlink.edge.provision import ProvisionError
from fleetlink.edge.provision.detect import can_interfaces, probe_adapter, serial_ports
from fleetlink.edge.provision.device_files import SECRETS_NAME, config_data, write_device_files
from fleetlink.edge.provision.enroll_client import enroll, upload_report
from fleetlink.edge.provision.profile_match import suggest_profiles
from fleetlink.edge.provision.state import ProvisionState
from fleetlink.edge.provision.systemd import install_unit
from fleetlink.edge.selftest import CanChannel, broker_round_trip, run_selftest
from fleetlink.firmware_profiles import profile_ids
from fleetlink.shared.enrollment import Check, EnrollRequest, EnrollResponse
from fleetlink.shared.validation import describe_errors
from fleetlink.shared.version import VERSION
from fleetlink.shared.vin import VinError, decode_vin, normalize_vin


class Answers(BaseModel):
    """Everything the wizard asks; from flags, an answers file, or prompts."""

    model_config = ConfigDict(extra="forbid")

    cloud: str | None = Field(None, description="the cloud's API URL")
    token: str | None = Field(None, description="the one-time enrollment token")
    obd_port: str | None = None
    baudrate: int | None = None
    vin: str | None = Field(None, description="the VIN, when the vehicle does not report it")
    profile: str | None = None
    gps_port: str | None = None
    gpsd: str | None = None
    can_interface: str | None = None
    can_channel: str | None = None
    config: Path = Path("/etc/fleetlink/device.toml")
    state_dir: Path = Path("/var/lib/fleetlink")
    systemd: bool = True
    selftest: bool = True


def load_answers(path: Path) -> dict[str, Any]:
    """Return the answers in a TOML file (keys as the flags, with _ for -).

    Raises:
        ProvisionError: the file cannot be read or is not TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{path}: cannot read the answers: {exc}") from None


def make_answers(data: dict[str, Any], source: str) -> Answers:
    try:
        return Answers.model_validate(data)
    except ValidationError as exc:
        raise ProvisionError(describe_errors(exc, source)) from None


class Ui(Protocol):
    """How the wizard talks; it calls ``ask`` only when ``interactive``."""

    interactive: bool

    def say(self, text: str) -> None: ...

    def ask(self, question: str, choices: list[str], default: str | None) -> str | None: ...

    def check(self, check: Check) -> None: ...


class Provisioner:
    """Runs the steps for one device with ``answers``; ``ui`` shows and asks."""

    def __init__(self, answers: Answers, ui: Ui) -> None:
        self.a = answers
        self.ui = ui
        self.state = ProvisionState(answers.state_dir)

    def _step(self, name: str, run: Callable[[], Any]) -> Any:
        if self.state.done(name):
            return self.state.get(name)
        result = run()
        self.state.save(name, result)
        return result

    def _ask(self, question: str, choices: list[str], default: str | None) -> str | None:
        return self.ui.ask(question, choices, default) if self.ui.interactive else None

    def _need(self, value: str | None, question: str, flag: str) -> str:
        if value:
            return value
        answer = self._ask(question, [], None)
        if not answer:
            raise ProvisionError(f"{question}: give it with {flag}")
        return answer.strip()

    # ------------------------------------------------------------------ steps

    def detect(self) -> dict[str, Any]:
        ports, cans = serial_ports(), can_interfaces()
        self.ui.say(f"serial ports: {', '.join(ports) or 'none'}")
        self.ui.say(f"CAN interfaces: {', '.join(cans) or 'none'}")
        return {"serial_ports": ports, "can_interfaces": cans}

    def adapter(self, found: dict[str, Any]) -> dict[str, Any]:
        port = self.a.obd_port
        if port is None:
            candidates = found["serial_ports"]
            if not candidates:
                raise ProvisionError(
                    "no serial port found: plug the OBD adapter in (USB), or give its port "
                    "with --obd-port"
                )
            port = (
                candidates[0]
                if len(candidates) == 1
                else self._ask("OBD adapter port", candidates, candidates[0])
            )
            if port is None:
                raise ProvisionError(
                    f"several serial ports ({', '.join(candidates)}): choose with --obd-port"
                )
        self.ui.say(f"probing the adapter on {port} …")
        try:
            probe = probe_adapter(port, self.a.baudrate)
        except LinkError as exc:
            raise ProvisionError(
                f"no OBD adapter answers on {port}: {exc}. Check the cable and the port "
                "(the serial ports found are listed above)"
            ) from None
        if not probe.vehicle:
            raise ProvisionError(
                f"the adapter on {port} ({probe.identity}) answers but the vehicle does not: "
                "turn the ignition on and run this again"
            )
        self.ui.say(f"adapter {probe.identity} at {probe.baudrate} baud, {probe.protocol}")
        return {"port": port, "baudrate": self.a.baudrate, "vin": probe.vin}

    def vin(self, adapter: dict[str, Any]) -> dict[str, Any]:
        read = adapter.get("vin")
        text = self.a.vin or read
        if text is None:
            text = self._ask("the vehicle does not report its VIN; type it", [], None)
            if not text:
                raise ProvisionError(
                    "the vehicle did not report its VIN: read it from the windscreen or door "
                    "pillar and give it with --vin"
                )
        try:
            vin = normalize_vin(text)
            info = decode_vin(vin)
        except VinError as exc:
            source = "the VIN given" if self.a.vin or not read else "the VIN the vehicle reported"
            raise ProvisionError(
                f"{source} ({text}) does not decode: {exc}; check it against the windscreen "
                "plate and give the right one with --vin"
            ) from None
        if self.a.vin and read and normalize_vin(self.a.vin) != read:
            self.ui.say(f"note: the vehicle reports VIN {read}; using {vin} as given")
        described = " ".join(
            str(x) for x in (info.model_year, info.make, info.model, info.country) if x
        )
        self.ui.say(f"VIN {vin}: {described or 'maker unknown'}")
        return {
            "vin": vin,
            "wmi": info.wmi,
            "make": info.make,
            "model": info.model,
            "model_year": info.model_year,
            "country": info.country,
            "region": info.region,
        }

    def profile(self, vin: dict[str, Any]) -> str:
        from fleetlink.shared.vin import VinInfo

        info = VinInfo(
            vin["wmi"], vin["make"], vin["model"], vin["model_year"], vin["country"], vin["region"]
        )
        suggested = suggest_profiles(info)
        if self.a.profile is not None:
            if self.a.profile not in profile_ids():
                raise ProvisionError(
                    f"no firmware profile {self.a.profile!r}; shipped: {', '.join(profile_ids())}"
                )
            return self.a.profile
        choice = self._ask("firmware profile", suggested, suggested[0]) or suggested[0]
        self.ui.say(f"firmware profile {choice}")
        return choice

    def enroll(self, vin: dict[str, Any], profile: str, serial: str | None) -> dict[str, Any]:
        api = self._cloud()
        token = self._need(self.a.token, "enrollment token", "--token")
        request = EnrollRequest(
            token=token,
            vin=vin["vin"],
            serial=serial,
            profile=profile,
            agent_version=VERSION,
        )
        answer = enroll(api, request)
        where = f"vehicle {answer.vehicle_name}" if answer.vehicle_name else "no vehicle"
        self.ui.say(f"enrolled as {answer.tenant}/{answer.device_id} ({where})")
        return answer.model_dump(mode="json")

    def _cloud(self) -> str:
        return self._need(self.a.cloud, "cloud API URL", "--cloud").rstrip("/")

    def _gps(self) -> dict[str, Any] | None:
        if self.a.gps_port:
            return {"nmea_port": self.a.gps_port}
        if self.a.gpsd:
            return {"gpsd": self.a.gpsd}
        return None

    def _files(self, enrolled: EnrollResponse, adapter: dict[str, Any], profile: str) -> tuple:
        return config_data(
            enrolled,
            self._cloud(),
            self.a.state_dir.resolve(),
            adapter["port"],
            adapter.get("baudrate"),
            profile,
            self._gps(),
        )

    def broker(self, enrolled: EnrollResponse, adapter: dict[str, Any], profile: str) -> str:
        """Prove the new login works before anything is written."""
        from fleetlink.edge.config import parse_config

        data, secrets = self._files(enrolled, adapter, profile)
        merged = {k: v for k, v in data.items() if k != "secrets_file"}
        for section, values in secrets.items():
            merged[section] = {**merged.get(section, {}), **values}
        check = broker_round_trip(parse_config(merged))
        self.ui.check(check)
        if check.outcome != "pass":
            raise ProvisionError(
                f"{check.detail}. {check.hint}. Nothing was written; run this again to continue"
            )
        return "ok"

    def config(self, enrolled: EnrollResponse, adapter: dict[str, Any], profile: str) -> str:
        data, secrets = self._files(enrolled, adapter, profile)
        config = write_device_files(self.a.config, data, secrets)
        try:
            with Outbox(config.outbox.path, config.outbox.max_bytes) as outbox:
                outbox.raise_next_seq(enrolled.high_water)
        except OutboxError as exc:
            raise ProvisionError(str(exc)) from None
        self.ui.say(f"wrote {self.a.config} (secrets in {self.a.config.parent}, mode 0600)")
        return str(self.a.config)

    def service(self) -> str:
        if not self.a.systemd:
            self.ui.say(
                f"service not installed (--no-systemd): fleetlink edge run --config {self.a.config}"
            )
            return "skipped"
        config = self.a.config.resolve()
        secrets = config.parent / SECRETS_NAME
        unit = install_unit(config, [secrets, self.a.state_dir.resolve()])
        self.ui.say(f"installed and started {unit}")
        return str(unit)

    def selftest(self, config: DeviceConfig) -> dict[str, Any]:
        channel = (
            CanChannel(self.a.can_interface or "socketcan", self.a.can_channel)
            if self.a.can_channel
            else None
        )
        report = run_selftest(config, channel, self.ui.check)
        stored = upload_report(self._cloud(), report) if config.cloud else {}
        verdict = "passed" if report.passed else "has failures (see the hints above)"
        self.ui.say(
            f"self-test {verdict}; report {stored.get('id', '(not uploaded)')} is on "
            "the vehicle's record"
        )
        return {"passed": report.passed, "report_id": stored.get("id")}

    def run(self) -> DeviceConfig:
        """Run every step not done yet; return the written configuration.

        Raises:
            ProvisionError: a step cannot go on (the message says why and what to do); rerun
                to continue from that step.
        """
        self.a.state_dir.mkdir(parents=True, exist_ok=True)
        found = self._step("detect", self.detect)
        adapter = self._step("adapter", lambda: self.adapter(found))
        vin = self._step("vin", lambda: self.vin(adapter))
        profile = self._step("profile", lambda: self.profile(vin))
        enrolled = (
            EnrollResponse.model_validate(
                self._step("enroll", lambda: self.enroll(vin, profile, None))
            )
            if not self.state.done("config")
            else None
        )
        if enrolled is not None:
            self._step("broker", lambda: self.broker(enrolled, adapter, profile))
            self._step("config", lambda: self.config(enrolled, adapter, profile))
            self.state.forget_secrets()
        self._step("service", self.service)
        config = load_config(self.a.config)
        if self.a.selftest:
            self._step("selftest", lambda: self.selftest(config))
        return config
