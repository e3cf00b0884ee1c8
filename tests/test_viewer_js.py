"""Runs viewer.js's unit tests (tests/js/, node's built-in test runner) with a GLB written by csdkit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from viewer_scenes import banded_sphere

from csdkit.io import save_glb

NODE = shutil.which("node")
JS_TESTS = Path(__file__).parent / "js"


@pytest.mark.skipif(NODE is None, reason="node is not installed (make browser-deps installs nodejs)")
def test_viewer_js_unit_tests(tmp_path):
    mesh = banded_sphere()
    glb = save_glb(mesh, tmp_path / "sphere.glb")
    expect = {"triangles": mesh.num_faces, "vertices": len(torch.unique(mesh.faces)),
              "min": [-1.0, -1.0, -1.0], "max": [1.0, 1.0, 1.0]}
    env = {**os.environ, "CSDKIT_GLB_FIXTURE": str(glb), "CSDKIT_GLB_EXPECT": json.dumps(expect)}
    proc = subprocess.run([NODE, "--test", str(JS_TESTS)], capture_output=True, text=True, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = int(re.search(r"^# pass (\d+)", out, re.M).group(1))
    failed = int(re.search(r"^# fail (\d+)", out, re.M).group(1))
    skipped = int(re.search(r"^# skipped (\d+)", out, re.M).group(1))
    assert failed == 0 and skipped == 0 and passed >= 12, out[-2000:]
