"""UV atlas generation: xatlas in an isolated subprocess with a timeout, and fallbacks.

xatlas gives good atlases but is known to segfault and to take very long on dense or broken
meshes. :func:`unwrap_uv` therefore runs it in a child process (``_xatlas_worker.py``, which
imports only NumPy and xatlas) under a timeout, and when it crashes, errors or times out it
says so and falls back:

* ``"decimate"``: decimate the mesh with open3d (a quarter of the faces) and unwrap that; the
  returned mesh is the *decimated* one.
* ``"per_triangle"``: a simple atlas that gives every pair of triangles its own square cell
  (always works, wastes texels and puts a seam on every edge; fine for previews and for
  texture optimization, poor for hand editing).
* ``"auto"`` (default): ``"decimate"`` when open3d is installed, else ``"per_triangle"``.
* ``"none"``: raise ``RuntimeError``.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..geometry.mesh import Mesh, MeshWarning
from ..geometry.mesh_cleanup import open3d_available
from ..ops._checks import check_choice, check_float, check_int
from .bake import transfer_texture

__all__ = ["unwrap_uv", "per_triangle_atlas", "UnwrapError"]

logger = logging.getLogger("csdkit.uv")
_FN = "unwrap_uv"
#: The worker script (run by path so the child does not import torch; see its docstring).
_WORKER = Path(__file__).with_name("_xatlas_worker.py")


class UnwrapError(RuntimeError):
    """xatlas failed (crash, error or timeout) and no fallback was allowed."""


def per_triangle_atlas(num_faces: int, resolution: int = 1024, padding: int = 2,
                       device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A trivial atlas: triangles in pairs, each pair in its own square cell of a regular grid.

    Triangle ``2k`` takes the lower-left half of cell ``k`` and triangle ``2k+1`` the upper-right
    half, each inset by ``padding`` texels from the cell border and from the diagonal, so no two
    triangles share texels at ``resolution``.

    Args:
        num_faces: ``F``.
        resolution: texture side in texels the layout is planned for.
        padding: gap in texels around each triangle.
        device: where the tensors go.

    Returns:
        ``uv [3F, 2]`` float32 in [0, 1] and ``face_uv [F, 3]`` int64 (counter-clockwise in UV).
    """
    fn = "per_triangle_atlas"
    check_int(fn, "num_faces", num_faces, min_value=1)
    check_int(fn, "resolution", resolution, min_value=8)
    check_int(fn, "padding", padding, min_value=0)
    n_cells = (num_faces + 1) // 2
    grid = math.ceil(math.sqrt(n_cells))
    cell = resolution / grid  # texels per cell side
    if cell < 2 * padding + 3:
        warnings.warn(f"{fn}(): {num_faces} faces leave only {cell:.1f} texels per cell at resolution "
                      f"{resolution}; the texture will be very coarse (raise the resolution or decimate)",
                      MeshWarning, stacklevel=2)
    pad = min(float(padding), cell / 6.0)
    k = torch.arange(num_faces, dtype=torch.float64)
    c = torch.div(k, 2, rounding_mode="floor")
    x0, y0 = (c % grid) * cell, torch.div(c, grid, rounding_mode="floor") * cell
    x1, y1 = x0 + cell, y0 + cell
    d = pad * math.sqrt(2.0)  # moving a vertex by d along an axis moves the diagonal by pad
    lower = torch.stack([torch.stack([x0 + pad, y0 + pad], -1), torch.stack([x1 - pad - d, y0 + pad], -1),
                         torch.stack([x0 + pad, y1 - pad - d], -1)], 1)
    upper = torch.stack([torch.stack([x1 - pad, y1 - pad], -1), torch.stack([x0 + pad + d, y1 - pad], -1),
                         torch.stack([x1 - pad, y0 + pad + d], -1)], 1)
    tri = torch.where((k % 2 == 0)[:, None, None], lower, upper) / resolution  # [F, 3, 2]
    uv = tri.reshape(-1, 2).to(dtype=torch.float32, device=device)
    face_uv = torch.arange(3 * num_faces, dtype=torch.int64, device=device).reshape(-1, 3)
    return uv, face_uv


def _run_xatlas(mesh: Mesh, resolution: int, padding: int, timeout: float,
                max_iterations: int | None) -> tuple[np.ndarray, np.ndarray] | str:
    """(uv [Vt, 2], face_uv [F, 3]) from the worker, or a sentence saying why it failed."""
    with tempfile.TemporaryDirectory(prefix="csdkit_xatlas_") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        faces = mesh.faces.cpu().numpy()
        np.savez(src, positions=mesh.vertices.detach().cpu().numpy().astype(np.float32),
                 faces=faces.astype(np.uint32),
                 options=json.dumps({"resolution": resolution, "padding": padding,
                                     "max_iterations": max_iterations}))
        try:
            proc = subprocess.run([sys.executable, str(_WORKER), str(src), str(dst)], capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return f"timed out after {timeout:g} s"
        except OSError as exc:
            return f"could not be started ({exc})"
        if proc.returncode < 0:
            return f"crashed (signal {-proc.returncode})"
        if proc.returncode != 0:
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no message"]
            return f"failed with exit status {proc.returncode}: {tail[0]}"
        try:
            out = np.load(dst)
            vmapping, indices, uvs = out["vmapping"], out["indices"].astype(np.int64), out["uvs"]
            atlas_count = int(out["atlas_count"])
        except Exception as exc:
            return f"wrote an unreadable result ({type(exc).__name__}: {exc})"
    if indices.shape != faces.shape or not np.array_equal(vmapping[indices].astype(np.int64), faces):
        return "returned faces that do not match the input"
    if atlas_count != 1:
        return f"needed {atlas_count} atlases at resolution {resolution}"
    if not np.isfinite(uvs).all():
        return "returned non-finite UVs"
    return uvs.astype(np.float32), indices


def unwrap_uv(mesh: Mesh, *, keep_uvs: bool = False, resolution: int = 1024, padding: int = 4,
              timeout: float = 120.0, max_faces: int = 500_000, fallback: str = "auto",
              max_iterations: int | None = None, bake_texture: bool = True) -> Mesh:
    """Give ``mesh`` a UV atlas (xatlas, isolated), keeping existing UVs when asked.

    Args:
        mesh: a :class:`~csdkit.Mesh` (any device; xatlas runs on the CPU).
        keep_uvs: if the mesh already has UVs, return it unchanged (a warning notes UVs outside
            [0, 1], which tile rather than form an atlas).
        resolution: texture side the atlas is packed for (texels); sets the padding scale.
        padding: gutter between charts in texels (xatlas ``PackOptions.padding``).
        timeout: seconds before the xatlas process is killed and the fallback runs.
        max_faces: more faces than this raise ``ValueError`` (suggesting decimation), unless the
            fallback may decimate (``"auto"`` with open3d, or ``"decimate"``).
        fallback: ``"auto"``, ``"decimate"``, ``"per_triangle"`` or ``"none"`` (see module doc).
        max_iterations: xatlas ``ChartOptions.max_iterations`` (None: xatlas' default).
        bake_texture: when the mesh has a texture under its old UVs, re-bake it into the new
            atlas (:func:`csdkit.uv.bake.transfer_texture`); otherwise it is dropped.

    Returns:
        A mesh with the same vertices and faces (unless decimated) and new ``uv [Vt, 2]`` float32 in
        [0, 1], ``face_uv [F, 3]`` int64, on ``mesh``'s device.

    Raises:
        ValueError: bad arguments, or too many faces (see ``max_faces``).
        UnwrapError: xatlas failed and ``fallback="none"``.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{_FN}(): mesh must be a csdkit.Mesh, got {type(mesh).__name__}")
    check_int(_FN, "resolution", resolution, min_value=8)
    check_int(_FN, "padding", padding, min_value=0)
    check_float(_FN, "timeout", timeout, min_value=0.0)
    check_int(_FN, "max_faces", max_faces, min_value=1)
    check_choice(_FN, "fallback", fallback, ("auto", "decimate", "per_triangle", "none"))
    if max_iterations is not None:
        check_int(_FN, "max_iterations", max_iterations, min_value=1)

    if keep_uvs and mesh.has_uv:
        lo, hi = float(mesh.uv.min()), float(mesh.uv.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            warnings.warn(f"{_FN}(): keeping the mesh's UVs, which span [{lo:.3g}, {hi:.3g}] (tiling, not an "
                          "atlas): texture optimization will write shared texels", MeshWarning, stacklevel=2)
        return mesh

    can_decimate = fallback == "decimate" or (fallback == "auto" and open3d_available())
    source = mesh
    if mesh.num_faces > max_faces:
        if not can_decimate:
            mesh.check_face_budget(max_faces, f"{_FN}()")
        _warn(f"{_FN}(): the mesh has {mesh.num_faces:,} faces (max_faces={max_faces:,}); decimating to "
              f"{max_faces:,} before unwrapping")
        mesh = mesh.decimated(max_faces)

    result = _run_xatlas(mesh, resolution, padding, timeout, max_iterations)
    if isinstance(result, str) and can_decimate and mesh.num_faces > 64:
        target = max(mesh.num_faces // 4, 16)
        _warn(f"{_FN}(): xatlas {result} on a mesh with {mesh.num_faces:,} faces; decimating to "
              f"{target:,} faces with open3d and retrying (the returned mesh is the decimated one)")
        mesh = mesh.decimated(target)
        result = _run_xatlas(mesh, resolution, padding, timeout, max_iterations)
    if isinstance(result, str):
        msg = f"{_FN}(): xatlas {result} on a mesh with {mesh.num_faces:,} faces"
        if fallback == "none":
            raise UnwrapError(msg + "; pass fallback='per_triangle' (or 'auto') to get a simple atlas "
                              "instead, raise timeout=, or decimate the mesh (mesh.decimated(n))")
        _warn(msg + "; using a simple per-triangle atlas instead (every face its own cell: more seams, "
              "fewer useful texels)")
        uv, face_uv = per_triangle_atlas(mesh.num_faces, resolution, padding, device=mesh.device)
    else:
        uv = torch.from_numpy(result[0]).to(mesh.device)
        face_uv = torch.from_numpy(result[1]).to(mesh.device)

    out = Mesh(mesh.vertices, mesh.faces, uv=uv, face_uv=face_uv, vertex_colors=mesh.vertex_colors)
    if source.texture is not None:
        if bake_texture and out.num_faces == source.num_faces:
            out = transfer_texture(source, out, resolution=resolution)
        else:
            _warn(f"{_FN}(): the mesh's texture belongs to its old UVs and was dropped")
    return out


def _warn(msg: str) -> None:
    logger.warning(msg)
    warnings.warn(msg, MeshWarning, stacklevel=3)
