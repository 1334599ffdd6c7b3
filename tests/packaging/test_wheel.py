"""The distribution as an operator installs it: one import package, ``bdchub``,
and the ``hub`` command, working outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NOT_SHIPPED = {"tests", "tools", "bench", ".venv", ".git", "build", "node_modules"}


def _package_folders() -> set[str]:
    found = {"bdchub"}
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and rel.parts[0] not in NOT_SHIPPED and "node_modules" not in rel.parts:
            found.add("bdchub." + ".".join(rel.parts))
    return found


def test_every_package_folder_is_listed_for_the_wheel():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == _package_folders()


def test_every_parts_module_named_in_the_entry_points_exists():
    for name, module in PYPROJECT["project"]["entry-points"]["bdchub.parts"].items():
        path = ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")
        assert path.is_file(), (name, module)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the tree (so the checkout stays clean)."""
    src = tmp_path_factory.mktemp("src") / "bdc-hub"
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.db", "node_modules")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {n for n in names if n in {*NOT_SHIPPED, "data", "var"}} if Path(folder) == ROOT else set()
        return top | junk(folder, names)

    shutil.copytree(ROOT, src, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, timeout=300,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    (found,) = out.glob("bdc_hub-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_installs_one_package_and_carries_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"bdchub"}
    for needed in ("bdchub/config.yaml", "bdchub/locale/zh_CN/core.po",
                   "bdchub/schemas/messages/application.schema.json",
                   "bdchub/schemas/wsdl/hub_inbound.wsdl", "bdchub/schemas/data/divisions.csv",
                   "bdchub/hub.py", "bdchub/routes/steps/domain/require_materials.py",
                   "bdchub/console/api.py", "bdchub/locale/zh_CN/console.po",
                   "bdchub/console/static/console.js", "bdchub/console/static/console.css",
                   "bdchub/console/static/vendor/echarts/echarts.min.js",
                   "bdchub/console/static/vendor/echarts/LICENSE"):
        assert needed in names
    assert not any(n.startswith(("bdchub/tests/", "bdchub/bench/", "bdchub/tools/"))
                   for n in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel installed. Its
    dependencies are borrowed from the test's own environment through a .pth
    line (no network, no second download of every library); the checkout's
    editable install is not, because a .pth line does not run the .pth files
    of the folder it adds."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   timeout=300, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return venv


def _hub(venv: Path, cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HUB_", "PYTHON")) and k != "VIRTUAL_ENV"}
    return subprocess.run([str(venv / "bin" / "hub"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_the_installed_command_runs_from_the_wheel_not_the_checkout(installed, tmp_path):
    probe = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import bdchub; print(bdchub.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert str(installed) in probe.stdout and str(ROOT) not in probe.stdout
    version = _hub(installed, tmp_path, "--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout


@pytest.mark.slow
def test_the_installed_hub_speaks_chinese_from_its_shipped_translations(installed, tmp_path):
    result = _hub(installed, tmp_path, "schemas")
    assert result.returncode == 0, result.stderr
    assert "application" in result.stdout and "申请" in result.stdout


@pytest.mark.slow
def test_the_installed_hub_runs_its_demo_green_outside_the_checkout(installed, tmp_path):
    result = _hub(installed, tmp_path, "--lang", "en", "demo", "--json", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not list(Path(installed).rglob("bdchub/data"))  # nothing written into the install
