"""``fleetlink edge provision`` against the simulator and a real cloud (API, ingest, database)
on a mosquitto that requires per-device logins: the whole installation, each bad input with
its message, and a rerun that continues where a failed run stopped."""

from __future__ import annotations

import asyncio
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from fleetlink.cloud import enrollment
from fleetlink.cloud.app import create_app
from fleetlink.edge.config import load_config
from fleetlink.edge.provision import ProvisionError
from fleetlink.edge.provision.wizard import Answers, Provisioner
from fleetlink.shared.enrollment import Check
from fleetlink.simulator.fleet import SimulatedVehicle
from fleetlink.simulator.nmea import NmeaEmitter
from tests.auth_broker import AuthBroker, auth_broker
from tests.cloud.conftest import bearer, ingest_settings, member_token, migrated_db, pool

__all__ = ["migrated_db", "pool"]  # the cloud tests' fixtures, used here too

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Recorder:
    interactive = False

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.checks: list[Check] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def ask(self, question: str, choices: list[str], default: str | None) -> str | None:
        raise AssertionError("a non-interactive run asked")

    def check(self, check: Check) -> None:
        self.checks.append(check)


@dataclass
class Site:
    api: str
    tenant: str
    broker: AuthBroker
    settings: object
    client: object  # the API test client, as an admin of the tenant


@pytest.fixture(scope="module")
def broker() -> Iterator[AuthBroker]:
    with auth_broker() as running:
        yield running


@pytest.fixture(scope="module")
def vehicle() -> Iterator[tuple[str, str, str]]:
    with SimulatedVehicle(seed=5, latency_s=0.0) as sim:
        receiver = NmeaEmitter(sim.snapshot, period_s=0.2)
        gps = receiver.start()
        assert sim.port is not None
        yield sim.port, gps, sim.vin
        receiver.stop()


@pytest.fixture
async def site(aiohttp_server, aiohttp_client, migrated_db, pool, broker) -> AsyncIterator[Site]:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    await pool.execute("INSERT INTO tenants (id, name) VALUES ($1, $1)", tenant)
    settings = ingest_settings(migrated_db, broker.service_url, **broker.files())
    server = await aiohttp_server(create_app(settings))
    token = await member_token(pool, tenant, "installer")
    client = await aiohttp_client(server, headers=bearer(token))
    yield Site(f"http://127.0.0.1:{server.port}", tenant, broker, settings, client)


async def new_token(site: Site) -> str:
    response = await site.client.post("/api/v1/enrollment-tokens", json={})  # type: ignore[attr-defined]
    return str((await response.json())["token"])


def answers(site: Site, tmp: Path, vehicle: tuple[str, str, str], **kw: object) -> Answers:
    port, gps, _ = vehicle
    values: dict[str, object] = {
        "cloud": site.api,
        "obd_port": port,
        "gps_port": gps,
        "config": tmp / "etc" / "device.toml",
        "state_dir": tmp / "state",
        "systemd": False,
    }
    values.update(kw)
    return Answers.model_validate(values)


async def provision(a: Answers) -> Recorder:
    ui = Recorder()
    await asyncio.to_thread(Provisioner(a, ui).run)
    return ui


async def test_a_device_is_provisioned_from_nothing_to_a_report_on_its_vehicle(
    site: Site, vehicle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    a = answers(site, tmp_path, vehicle, token=await new_token(site))
    ui = await provision(a)
    assert {c.name: c.outcome for c in ui.checks} == {
        "broker": "pass",  # the new login, checked before anything was written
        "adapter": "pass",
        "vehicle": "pass",
        "can": "skip",
        "gps": "pass",
        "clock": "pass",
        "disk": "pass",
    }
    config = load_config(a.config)
    secrets = a.config.parent / "device.secrets.toml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert config.mqtt.password is not None and config.device.key is not None
    for secret in (config.mqtt.password, config.device.key):
        assert secret.get_secret_value() not in a.config.read_text()
        assert secret.get_secret_value() in secrets.read_text()
    state = (tmp_path / "state" / "provision.json").read_text()
    assert config.mqtt.password.get_secret_value() not in state
    assert stat.S_IMODE((tmp_path / "state" / "provision.json").stat().st_mode) == 0o600

    device = await (await site.client.get(f"/api/v1/devices/{config.device.id}")).json()  # type: ignore[attr-defined]
    reports = await site.client.get(  # type: ignore[attr-defined]
        f"/api/v1/vehicles/{device['vehicle_id']}/install-reports"
    )
    items = (await reports.json())["items"]
    assert len(items) == 1 and items[0]["passed"] is True
    assert items[0]["report"]["vin"] == vehicle[2]

    again = await provision(a)  # a rerun of a finished provisioning does nothing again
    assert again.checks == [] and again.lines == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": "flenr_" + "A" * 43}, "not known"),
        ({"obd_port": "/nonexistent/ttyUSB9"}, "no OBD adapter answers on /nonexistent/ttyUSB9"),
        ({"vin": "1HGCM82633A004353"}, "does not decode: check digit"),
        ({"profile": "no-such-profile"}, "no firmware profile 'no-such-profile'"),
        ({"cloud": "http://127.0.0.1:9"}, "cannot reach the cloud"),
    ],
    ids=["wrong-token", "no-adapter", "bad-vin", "bad-profile", "no-cloud"],
)
async def test_bad_input_stops_with_a_clear_message_and_writes_no_configuration(
    site: Site, vehicle, tmp_path: Path, change: dict[str, object], message: str
) -> None:  # type: ignore[no-untyped-def]
    a = answers(site, tmp_path, vehicle, **({"token": await new_token(site)} | change))
    with pytest.raises(ProvisionError, match=message):
        await provision(a)
    assert not a.config.exists() and not (a.config.parent / "device.secrets.toml").exists()


async def test_a_used_token_is_refused_with_who_used_it(
    site: Site, vehicle, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token = await new_token(site)
    await provision(answers(site, tmp_path / "one", vehicle, token=token, selftest=False))
    second = answers(site, tmp_path / "two", vehicle, token=token)
    with pytest.raises(ProvisionError, match="already used"):
        await provision(second)
    assert not second.config.exists()


async def test_a_refused_broker_login_writes_nothing_and_a_rerun_continues_without_a_new_token(
    site: Site, vehicle, tmp_path: Path, pool: asyncpg.Pool
) -> None:  # type: ignore[no-untyped-def]
    a = answers(site, tmp_path, vehicle, token=await new_token(site), selftest=False)
    files = site.broker.files()
    # The broker's files stop being written (a cloud without them configured).
    site.settings.broker_passwd_file = None  # type: ignore[attr-defined]
    with pytest.raises(ProvisionError, match="refused") as refused:
        await provision(a)
    assert "broker sync" in str(refused.value)
    assert not a.config.exists()

    # The operator syncs the broker; the rerun needs no token (enrollment is not repeated).
    site.settings.broker_passwd_file = files["broker_passwd_file"]  # type: ignore[attr-defined]
    async with pool.acquire() as conn:
        await enrollment.sync_broker(conn, site.settings)  # type: ignore[arg-type]
    ui = await provision(a.model_copy(update={"token": None}))
    assert any("wrote" in line for line in ui.lines)
    assert load_config(a.config).mqtt.password is not None
