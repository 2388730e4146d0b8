import json
import subprocess
import sys

from typer.testing import CliRunner

from shared.cli import SUBCOMMANDS, build


def test_every_sub_command_is_listed_in_the_root_help():
    result = CliRunner().invoke(build(None), ["--help"])
    assert result.exit_code == 0
    for sub in SUBCOMMANDS:
        assert sub.name in result.output


def test_the_edge_command_loads_none_of_the_clouds_stack():
    code = (
        "import json, sys\n"
        "from shared.cli import build\n"
        "build('edge')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert "edge" in loaded
    assert not loaded & {"aiohttp", "asyncpg", "psycopg", "cloud", "simulator"}


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
