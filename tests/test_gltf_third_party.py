"""glTF files written by another tool: glTF-Transform's CLI (npm ``@gltf-transform/cli``, which ``make
tools`` installs under build/npm) compresses, quantizes and meshopt-encodes a textured GLB that csdkit
wrote, the way asset pipelines ship them. csdkit must read the Draco and quantized files back to the
same surface, UVs and texture, and refuse the meshopt one with the extension's name."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from csdkit import Mesh
from csdkit.io import MeshFormatError, save_glb

ROOT = Path(__file__).resolve().parents[1]
TOOL = os.environ.get("CSDKIT_GLTF_TRANSFORM") or shutil.which("gltf-transform") or str(
    ROOT / "build" / "npm" / "node_modules" / ".bin" / "gltf-transform")

pytestmark = pytest.mark.skipif(not Path(TOOL).is_file() and shutil.which(TOOL) is None,
                                reason="glTF-Transform CLI not installed (`make tools` installs it with npm)")


def _run(*args: str) -> None:
    proc = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"gltf-transform {' '.join(args)} failed: {proc.stderr[-2000:]}")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Mesh]:
    tm = trimesh.creation.icosphere(subdivisions=3)
    v = torch.tensor(tm.vertices, dtype=torch.float32) * torch.tensor([1.0, 0.6, 0.8])
    uv = torch.stack([0.5 + torch.atan2(v[:, 0], v[:, 2]) / (2 * math.pi),
                      0.5 + torch.asin((v[:, 1] / 0.6).clamp(-1, 1)) / math.pi], dim=1)
    tex = torch.zeros(32, 32, 3)
    tex[:16, :, 0] = 1.0  # top half red, bottom half green
    tex[16:, :, 1] = 1.0
    mesh = Mesh(v, torch.tensor(tm.faces), uv=uv, texture=tex)
    path = save_glb(mesh, tmp_path_factory.mktemp("gltf") / "source.glb")
    return path, Mesh.load(path)


def _corners(mesh: Mesh, decimals: int = 2) -> np.ndarray:
    """Face corners as sorted rows of (xyz uv) x 3, independent of vertex and face order."""
    p = mesh.vertices[mesh.faces].numpy()
    t = mesh.uv[mesh.face_uv].numpy()
    rows = np.round(np.concatenate([p, t], axis=2).astype(np.float64), decimals)
    rows = np.sort(rows.reshape(len(rows), 3, 5).view([("", rows.dtype)] * 5), axis=1).view(rows.dtype)
    rows = rows.reshape(len(rows), -1)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("command", [["draco"], ["quantize"], ["draco", "--method", "sequential"]])
def test_compressed_files_read_back_to_the_same_asset(source, tmp_path, command):
    src, reference = source
    out = tmp_path / f"{command[0]}.glb"
    _run(command[0], str(src), str(out), *command[1:])
    assert out.read_bytes()[:4] == b"glTF"
    loaded = Mesh.load(out)
    assert loaded.num_faces == reference.num_faces
    # quantization moves positions and UVs by < 1e-3 of the box; compare at 2 decimals after sorting
    diff = np.abs(_corners(loaded) - _corners(reference))
    assert np.mean(diff <= 0.011) > 0.98, f"max corner difference {diff.max()}"
    torch.testing.assert_close(loaded.texture, reference.texture)
    lo, hi = loaded.bounds()
    torch.testing.assert_close(hi - lo, torch.tensor([2.0, 1.2, 1.6]), atol=0.02, rtol=0)


def test_meshopt_is_refused_by_name(source, tmp_path):
    src, _ = source
    out = tmp_path / "meshopt.glb"
    _run("meshopt", str(src), str(out))
    with pytest.raises(MeshFormatError, match="EXT_meshopt_compression"):
        Mesh.load(out)
