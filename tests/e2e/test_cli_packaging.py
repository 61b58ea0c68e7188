"""`pip install .` (not editable) must give a working `syncd` with layouts and migrations inside
the wheel. Builds the wheel from a copy of the tree so the shared working tree stays untouched."""

import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("syncd", "connectors", "layouts"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{result.stdout}\n{result.stderr}")
    [built] = out.glob("syncd-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_layouts_migrations_and_entry_point(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    # The repository's layouts/ and connectors/ install under syncd/ (package-dir in pyproject).
    layouts = sorted("syncd/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "layouts").glob("*/*.j2"))
    assert layouts, "no layouts in the tree to check"
    connectors = sorted("syncd/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "connectors").rglob("*.py")
                        if "__pycache__" not in p.parts)
    assert [p for p in connectors if p not in names] == []
    top_level = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info/" not in n}
    assert top_level == {"syncd"}, f"the wheel installs more than the syncd package: {sorted(top_level)}"
    missing = [p for p in layouts if p not in names]
    assert not missing, f"layouts missing from the wheel: {missing}"
    connectors = sorted("syncd/" + p.relative_to(ROOT).as_posix()
                        for p in (ROOT / "connectors").rglob("*.py") if "__pycache__" not in p.parts)
    assert "syncd/connectors/shopware6/sandbox/__init__.py" in connectors
    assert [p for p in connectors if p not in names] == []
    migrations = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "syncd/state/migrations").rglob("*.py")
    )
    assert "syncd/state/migrations/versions/0001_initial.py" in migrations
    assert [p for p in migrations if p not in names] == []
    assert "syncd/state/migrations/script.py.mako" in names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "syncd = syncd.shell.cli:main" in text


@pytest.mark.slow
def test_wheel_installs_no_generic_top_level_packages(wheel):
    """Top-level ``connectors`` / ``layouts`` in site-packages would collide with other projects."""
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info/" not in n}
    assert top == {"syncd"}, f"the wheel installs top-level folders {sorted(top)}"
    [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["syncd"]


def _declared_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared_in_pyproject():
    """A subpackage missing from ``packages`` is silently left out of the wheel (works in the
    editable install, breaks after ``pip install .``)."""
    declared = _declared_packages()
    expected = set()
    roots = (("syncd", "syncd"), ("connectors", "syncd.connectors"), ("layouts", "syncd.layouts"))
    for folder, prefix in roots:
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder).parts
            expected.add(".".join((prefix, *rel)))
    missing = sorted(expected - declared)
    assert not missing, f"folders with an __init__.py missing from [tool.setuptools] packages: {missing}"


@pytest.mark.slow
def test_installed_wheel_runs_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # -S: no site hooks, so the editable install of the working tree cannot be picked up; the
    # dependencies come from this venv's site-packages, syncd only from the installed wheel.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *site.getsitepackages()])}
    db = str(tmp_path / "state.db")
    probe = (
        "import syncd, syncd.layouts, syncd.connectors.erp, importlib.resources as r;"
        "from syncd.shell.cli import run_cli;"
        f"assert syncd.__file__.startswith({str(target)!r}), syncd.__file__;"
        "names = sorted(p.name for p in r.files('syncd.layouts').iterdir() if p.is_dir());"
        "print(names);"
        f"from syncd.state.db import open_state; open_state('sqlite:///' + {db!r}).close();"
        "raise SystemExit(run_cli(['--help']))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True, cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "credentials" in result.stdout and "clear-cache" in result.stdout
    assert (tmp_path / "state.db").exists()
