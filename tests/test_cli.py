"""The root ``fleetlink`` command: its sub-commands, its version, and what each one loads."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from fleetlink.__main__ import SUBCOMMANDS, build


def test_every_sub_command_is_listed_in_the_root_help():
    result = CliRunner().invoke(build(None), ["--help"])
    assert result.exit_code == 0
    for sub in SUBCOMMANDS:
        assert sub.name in result.output


def test_the_edge_command_loads_none_of_the_clouds_stack():
    code = (
        "import json, sys\n"
        "from fleetlink.__main__ import build\n"
        "build('edge')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "fleetlink.edge.cli" in loaded
    stack = ("aiohttp", "asyncpg", "psycopg", "fleetlink.cloud", "fleetlink.simulator")
    assert [m for m in loaded if any(m == s or m.startswith(s + ".") for s in stack)] == []


def test_each_sub_command_mounts_its_own_commands():
    for name, command in [
        ("edge", "check-config"),
        ("cloud", "migrate"),
        ("sim", "run"),
        ("bench", "codec"),
        ("diag", "dtc"),
    ]:
        result = CliRunner().invoke(build(name), [name, "--help"])
        assert result.exit_code == 0, result.output
        assert command in result.output


def test_the_version_comes_from_the_installed_distribution():
    from importlib.metadata import version

    result = CliRunner().invoke(build(None), ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"fleetlink {version('fleetlink')}"


def test_python_dash_m_fleetlink_runs_the_root_command():
    out = subprocess.run(
        [sys.executable, "-m", "fleetlink", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("fleetlink ")
