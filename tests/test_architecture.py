"""The one-way layers (README "Architecture") are enforced by import-linter's contracts in pyproject.toml.

The contracts pass on the package, and a deliberately wrong import — added to a copy of the package in
a temporary folder, never to the package itself — breaks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import csdkit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "csdkit"
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (make venv installs it)")


def _lint(package_parent: Path, config_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([LINT, "--no-cache"], cwd=config_dir, env=env, capture_output=True, text=True,
                          timeout=120)


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "src" / "csdkit"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("*.so", "__pycache__", "assets"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return dst


def test_the_package_keeps_its_layers(tmp_path):
    dst = _copy(tmp_path)
    proc = _lint(dst.parent, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, bad_import, broken", [
    # geometry may not import the renderer (a layer above it), not even inside a function
    ("geometry/mesh.py", "def _bad():\n    from ..render.cameras import Cameras\n    return Cameras\n",
     "csdkit.geometry is not allowed to import csdkit.render"),
    # training knows no geometry
    ("training/trainer.py", "from ..geometry.mesh import Mesh  # noqa\n",
     "csdkit.training is not allowed to import csdkit.geometry"),
    # guidance sees images only
    ("guidance/csd.py", "from ..uv import TexturedMesh  # noqa\n",
     "csdkit.guidance is not allowed to import csdkit.uv"),
])
def test_a_wrong_import_breaks_the_contracts(tmp_path, module, bad_import, broken):
    dst = _copy(tmp_path)
    target = dst / module
    target.write_text(target.read_text() + "\n\n" + bad_import)
    proc = _lint(dst.parent, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert broken in proc.stdout, proc.stdout


def test_the_top_level_api_is_plain():
    assert isinstance(csdkit.texture, types.FunctionType)
    assert csdkit.MiniPrior is csdkit.guidance.MiniPrior
    assert isinstance(csdkit.uv, types.ModuleType) and not callable(csdkit.uv)
    assert csdkit.uv.TexturedMesh is csdkit.TexturedMesh
    assert csdkit.io.load_mesh.__module__ == "csdkit.io.load"
