"""`pip install .`, not editable, gives a working `edge-agent` with every catalogue model.

The wheel is built from a copy of the sources (nothing is written into the checkout) without
build isolation, with this environment's setuptools, and installed without its dependencies
into a fresh virtual environment, which then borrows this environment's packages for them:
no network. `edge-agent check` of a site that uses every model of the catalogue then runs
from another folder, so that nothing can come from the checkout. Some 10 s on two cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "edge_agent", "drivers", "simulators")
"""What a wheel is built from (the Dockerfile copies the same)."""
CATALOGUE = ROOT / "edge_agent" / "catalogue"
TYPED = ("edge_agent", "drivers", "simulators")


@dataclass(frozen=True, slots=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path
    """An empty folder outside the checkout, to run the commands from."""

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "EDGE_AGENT_CATALOGUE", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _ok(
        _run(
            sys.executable,
            *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
            *("--quiet", "--wheel-dir", dist, source),
        )
    )
    (wheel,) = dist.glob("*.whl")

    venv = tmp_path_factory.mktemp("venv")
    _ok(_run(sys.executable, "-m", "venv", "--without-pip", "--clear", venv))
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    _ok(
        _run(
            sys.executable,
            *("-m", "pip", "--python", python, "install", "--no-deps", "--no-index"),
            *("--quiet", wheel),
        )
    )
    # The dependencies come from this environment, after the new one's own packages: only
    # once the wheel is in, so that pip never sees (nor touches) this environment's install.
    purelib = _ok(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (Path(purelib.strip()) / "borrowed-dependencies.pth").write_text(
        "\n".join(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
        + "\n",
        encoding="utf-8",
    )
    return Installed(wheel, venv, tmp_path_factory.mktemp("elsewhere"))


def test_the_wheel_carries_the_catalogue_the_markers_and_the_commands(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = wheel.read(entry_points).decode()
    models = sorted(p.name for p in CATALOGUE.glob("*.yaml"))
    assert models, "the checkout's catalogue is empty"
    assert [m for m in models if f"edge_agent/catalogue/{m}" not in names] == []
    assert [p for p in TYPED if f"{p}/py.typed" not in names] == []
    assert "[edge_agent.commands]" in declared
    assert "simulators.cli:DEMO" in declared
    assert "simulators.cli:SIMULATE" in declared


def test_the_installed_package_is_the_wheels(installed: Installed) -> None:
    where = _ok(
        _run(
            installed.bin("python"),
            *("-c", "import edge_agent; print(edge_agent.__file__)"),
            cwd=installed.elsewhere,
        )
    )
    assert Path(where.strip()).resolve().is_relative_to(installed.venv.resolve()), where


def test_check_finds_every_catalogue_model_from_another_folder(installed: Installed) -> None:
    devices: list[str] = []
    for index, path in enumerate(sorted(CATALOGUE.glob("*.yaml")), start=1):
        name, protocol = path.stem, ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("protocol:"):
                protocol = line.split(":", 1)[1].strip()
        where = (
            f"driver: opcua, endpoint: 'opc.tcp://127.0.0.1:{4840 + index}/'"
            if protocol == "opcua"
            else f"driver: modbus-tcp, host: 127.0.0.1, unit: {index}"
        )
        devices.append(f"  - {{name: {name}, model: {name}, {where}}}")
    site = installed.elsewhere / "site.yaml"
    site.write_text(
        "site: {name: wheel-test, park: bench}\nbroker: {host: 127.0.0.1}\ndevices:\n"
        + "\n".join(devices)
        + "\n",
        encoding="utf-8",
    )
    output = _ok(_run(installed.bin("edge-agent"), "check", site.name, cwd=installed.elsewhere))
    assert f"site.yaml: OK - site bench/wheel-test, {len(devices)} devices" in output
    for path in CATALOGUE.glob("*.yaml"):
        assert f"model {path.stem}" in output or f"\n{path.stem} (OPC UA" in output, path.stem


def test_demo_and_simulate_are_edge_agent_commands(installed: Installed) -> None:
    output = _ok(_run(installed.bin("edge-agent"), "--help", cwd=installed.elsewhere))
    assert "demo" in output
    assert "simulate" in output
    usage = _ok(_run(installed.bin("edge-agent"), "simulate", "--help", cwd=installed.elsewhere))
    assert "--in-process" in usage
