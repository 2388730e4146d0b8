"""A device installs ``fleetlink[edge]`` alone: the agent works without the cloud's stack."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.integration


def test_an_edge_only_install_checks_a_config_and_lacks_the_cloud_stack(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{ROOT}[edge]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    fleetlink = env_dir / "bin" / "fleetlink"
    check = subprocess.run(
        [str(fleetlink), "edge", "check-config", str(ROOT / "deploy/edge/device.example.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in "
            "('aiohttp', 'asyncpg', 'psycopg', 'amqtt', 'pgserver') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "[]", "the edge extra pulled in the cloud's stack"
    cloud = subprocess.run(
        [str(fleetlink), "cloud", "serve"], capture_output=True, text=True, cwd=tmp_path
    )
    assert cloud.returncode == 2 and "pip install 'fleetlink[cloud]'" in cloud.stderr
