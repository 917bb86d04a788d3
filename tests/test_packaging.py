"""bridge installs as a package: the wheel holds the library, the shipped model and the web page, and its
console entry points run from any directory."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("bridge-*.whl")
    return path


def test_the_wheel_holds_the_library_and_the_shipped_model(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "bridge/__init__.py" in names and "bridge/release/__init__.py" in names
    shipped = ROOT / "bridge" / "pretrained"
    for path in shipped.rglob("*"):
        if path.is_file():
            assert str(path.relative_to(ROOT)) in names, f"{path.relative_to(ROOT)} is not in the wheel"
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "checkpoints/"))]


def test_the_installed_wheel_imports_and_runs_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = "import json, bridge, bridge.release as r; print(json.dumps([bridge.__file__, r.release_names()]))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    location, releases = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(location).is_relative_to(site)
    shipped = ROOT / "bridge" / "pretrained"
    assert releases == (sorted(p.name for p in shipped.iterdir() if p.is_dir()) if shipped.is_dir() else [])

    entry_points = configparser.ConfigParser()
    (info,) = site.glob("bridge-*.dist-info")
    entry_points.read(info / "entry_points.txt")
    scripts = dict(entry_points["console_scripts"])
    assert set(scripts) == {"bridge-train", "bridge-infer", "bridge-evaluate"}
    for name, target in scripts.items():
        module, func = target.split(":")
        call = f"import sys, {module} as m; sys.argv = ['{name}', '--help']; m.{func}()"
        done = subprocess.run([sys.executable, "-c", call], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert done.returncode == 0 and "usage:" in done.stdout, (name, done.stderr[-1000:])
