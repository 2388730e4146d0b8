"""The distribution installs one import package, ``fleetlink``, and works from a built wheel.

The sdist is built from the checkout and the wheel from the sdist (``python -m build``), so a
file missing from either shows here. A fresh venv then installs the wheel with the ``edge``
extra alone, as a device does, and runs the commands an installer runs first.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FOLDERS = ("edge", "cloud", "shared", "simulator", "firmware_profiles")

pytestmark = pytest.mark.integration


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def _wheel(dist: Path) -> zipfile.ZipFile:
    (wheel,) = dist.glob("fleetlink-*.whl")
    return zipfile.ZipFile(wheel)


def test_the_wheel_installs_exactly_one_top_level_name(dist: Path) -> None:
    names = _wheel(dist).namelist()
    assert {n.split("/")[0] for n in names} == {
        "fleetlink",
        next(n.split("/")[0] for n in names if ".dist-info/" in n),
    }
    top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    if top_level:
        assert _wheel(dist).read(top_level[0]).decode().split() == ["fleetlink"]


def test_every_python_folder_of_the_checkout_is_a_package_in_the_wheel(dist: Path) -> None:
    names = set(_wheel(dist).namelist())
    for folder in FOLDERS:
        for init in (ROOT / folder).rglob("__init__.py"):
            module = "fleetlink/" + init.relative_to(ROOT).as_posix()
            assert module in names, f"{init.parent} is not listed in pyproject's packages"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in declared["packages"]:
        folder = ROOT.joinpath(*package.split(".")[1:])
        assert package == "fleetlink" or (folder / "__init__.py").is_file(), package


def test_the_wheel_carries_its_package_data(dist: Path) -> None:
    names = set(_wheel(dist).namelist())
    for sql in (ROOT / "cloud/migrations").glob("*.sql"):
        assert f"fleetlink/cloud/migrations/{sql.name}" in names
    for profile in (ROOT / "firmware_profiles").glob("*.toml"):
        assert f"fleetlink/firmware_profiles/{profile.name}" in names
    dbc_files = list((ROOT / "firmware_profiles/dbc").glob("*.dbc"))
    assert dbc_files
    for dbc in dbc_files:
        assert f"fleetlink/firmware_profiles/dbc/{dbc.name}" in names
    assert "fleetlink/py.typed" in names
    assert "fleetlink/__main__.py" in names


def test_the_sdist_holds_the_sources_the_wheel_is_built_from(dist: Path) -> None:
    (sdist,) = dist.glob("fleetlink-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    expected = {"pyproject.toml", "README.md", "__main__.py", "firmware_profiles/generic-obd2.toml"}
    assert expected <= members
    assert any(m.startswith("cloud/migrations/") and m.endswith(".sql") for m in members)


def test_an_edge_only_install_from_the_wheel_runs_and_lacks_the_cloud_stack(
    dist: Path, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("fleetlink-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    fleetlink = env_dir / "bin" / "fleetlink"
    install = _run(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        f"fleetlink[edge] @ {wheel.as_uri()}",
        cwd=tmp_path,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    for command in ([fleetlink, "--help"], [python, "-m", "fleetlink", "--help"]):
        shown = _run(*command, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "edge" in shown.stdout and "diag" in shown.stdout
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(fleetlink, "--version", cwd=tmp_path).stdout.split() == ["fleetlink", declared]

    check = _run(
        fleetlink, "edge", "check-config", ROOT / "deploy/edge/device.example.toml", cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "8 OBD commands in 2 poll groups (profile auto: generic-obd2 until" in check.stdout
    listed = _run(fleetlink, "edge", "profile", "list", cwd=tmp_path).stdout.splitlines()
    # The CAN profiles load their DBC files from the wheel with the edge extra's cantools.
    assert [line.split()[0] for line in listed] == [
        "fleetlink-sim-car",
        "generic-obd2",
        "heavy-truck-j1939",
    ]

    probe = _run(
        python,
        "-c",
        "import importlib.util as u; print([m for m in "
        "('aiohttp', 'asyncpg', 'psycopg', 'amqtt', 'pgserver') if u.find_spec(m)])",
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "[]", "the edge extra pulled in the cloud's stack"
    cloud = _run(fleetlink, "cloud", "serve", cwd=tmp_path)
    assert cloud.returncode == 2 and "pip install 'fleetlink[cloud]'" in cloud.stderr
