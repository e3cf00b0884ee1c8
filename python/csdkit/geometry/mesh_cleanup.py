"""Mesh clean-up (pure NumPy) and quadric decimation (open3d, optional).

* :func:`degenerate_face_mask` / :func:`drop_degenerate_faces`: faces with a repeated vertex or
  (numerically) zero area. Loading drops them with a :class:`~csdkit.geometry.mesh.MeshWarning`.
* :func:`clean_mesh`: merge exactly coincident vertices, drop degenerate and duplicate faces and
  unreferenced vertices. Always available; UVs (separately indexed) survive untouched.
* :func:`decimate`: quadric-error decimation through ``open3d`` when it is installed
  (``pip install open3d``); otherwise an ImportError that says so.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch

from .mesh import Mesh, MeshWarning

__all__ = ["degenerate_face_mask", "drop_degenerate_faces", "clean_mesh", "decimate", "open3d_available"]


def degenerate_face_mask(vertices: torch.Tensor, faces: torch.Tensor, rel_eps: float = 1e-12) -> torch.Tensor:
    """``[F]`` bool: True for faces with a repeated vertex index or area below ``rel_eps * diag^2``.

    Args:
        vertices: ``[V, 3]`` float; faces: ``[F, 3]`` int64, same device.
        rel_eps: area threshold relative to the squared bounding-box diagonal.
    """
    f = faces
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    v = vertices.detach().double()
    tri = v[f]
    area2 = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    diag = float((v.max(dim=0).values - v.min(dim=0).values).norm()) if v.shape[0] else 0.0
    return repeated | (area2 <= 2.0 * rel_eps * diag * diag)


def _select_faces(mesh: Mesh, keep: torch.Tensor) -> Mesh:
    face_uv = None if mesh.face_uv is None else mesh.face_uv[keep]
    return Mesh(mesh.vertices, mesh.faces[keep], uv=mesh.uv, face_uv=face_uv,
                vertex_colors=mesh.vertex_colors, texture=mesh.texture, validate=False)


def drop_degenerate_faces(mesh: Mesh, *, warn: bool = True, fn: str = "Mesh") -> Mesh:
    """Remove degenerate faces (see :func:`degenerate_face_mask`), warning how many were dropped."""
    bad = degenerate_face_mask(mesh.vertices, mesh.faces)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return mesh
    if n_bad == mesh.num_faces:
        raise ValueError(f"{fn}: all {n_bad} faces are degenerate (zero area or repeated vertices); "
                         "there is no surface to work with")
    if warn:
        warnings.warn(f"{fn}: dropped {n_bad} degenerate face(s) of {mesh.num_faces} "
                      "(zero area or a repeated vertex)", MeshWarning, stacklevel=3)
    return _select_faces(mesh, ~bad)


def clean_mesh(mesh: Mesh, *, merge_vertices: bool = True, drop_degenerate: bool = True,
               drop_duplicate_faces: bool = True, drop_unreferenced: bool = True, warn: bool = True) -> Mesh:
    """A cleaned copy of ``mesh`` (NumPy; the result is detached from autograd).

    Args:
        merge_vertices: merge vertices with exactly equal positions (the first one's colour wins).
        drop_degenerate: drop faces with a repeated vertex or zero area.
        drop_duplicate_faces: drop faces that use the same three vertices as an earlier face
            (either orientation).
        drop_unreferenced: drop vertices no face uses.
        warn: emit a :class:`MeshWarning` summarizing what changed.
    """
    fn = "Mesh.cleaned()"
    dev, dtype = mesh.device, mesh.vertices.dtype
    v = mesh.vertices.detach().cpu().numpy()
    f = mesh.faces.cpu().numpy()
    fuv = None if mesh.face_uv is None else mesh.face_uv.cpu().numpy()
    vc = None if mesh.vertex_colors is None else mesh.vertex_colors.detach().cpu().numpy()
    report = []

    if merge_vertices:
        uniq, first, inverse = np.unique(v, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        if len(uniq) < len(v):
            report.append(f"merged {len(v) - len(uniq)} duplicate vertices")
            order = np.argsort(first)  # keep the original vertex order (first occurrences)
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            v = uniq[order]
            vc = None if vc is None else vc[first[order]]
            f = rank[inverse][f]

    keep = np.ones(len(f), dtype=bool)
    if drop_degenerate:
        bad = degenerate_face_mask(torch.from_numpy(v), torch.from_numpy(f)).numpy()
        if bad.any():
            report.append(f"dropped {int(bad.sum())} degenerate faces")
        keep &= ~bad
    if drop_duplicate_faces:
        key = np.sort(f, axis=1)
        _, first_face = np.unique(key[keep], axis=0, return_index=True)
        dup = np.ones(int(keep.sum()), dtype=bool)
        dup[first_face] = False
        if dup.any():
            report.append(f"dropped {int(dup.sum())} duplicate faces")
            kept_idx = np.nonzero(keep)[0]
            keep[kept_idx[dup]] = False
    if not keep.any():
        raise ValueError(f"{fn}: no faces left after clean-up (all {len(f)} were degenerate)")
    f = f[keep]
    fuv = None if fuv is None else fuv[keep]

    if drop_unreferenced:
        used = np.zeros(len(v), dtype=bool)
        used[f.reshape(-1)] = True
        if not used.all():
            report.append(f"dropped {int((~used).sum())} unreferenced vertices")
            remap = np.cumsum(used) - 1
            v, f = v[used], remap[f]
            vc = None if vc is None else vc[used]

    if warn and report:
        warnings.warn(f"{fn}: " + ", ".join(report), MeshWarning, stacklevel=3)

    def t(a, dt):
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device=dev, dtype=dt)

    uv = None if mesh.uv is None else mesh.uv.detach()
    return Mesh(t(v, dtype), t(f, torch.int64), uv=uv, face_uv=t(fuv, torch.int64),
                vertex_colors=t(vc, torch.float32), texture=mesh.texture, validate=True)


def open3d_available() -> bool:
    """True when ``open3d`` can be imported."""
    try:
        importlib.import_module("open3d")
    except ImportError:
        return False
    return True


def _import_open3d(fn: str):
    try:
        return importlib.import_module("open3d")
    except ImportError as exc:
        raise ImportError(
            f"{fn}: quadric decimation needs open3d, which is not installed: `pip install open3d` "
            "(or `pip install 'csdkit[mesh]'`); alternatively decimate the mesh in Blender/MeshLab "
            f"before loading it ({exc})") from exc


def decimate(mesh: Mesh, target_faces: int) -> Mesh:
    """Quadric-error decimation to about ``target_faces`` faces with open3d.

    Args:
        mesh: the mesh; UVs and texture are dropped (with a :class:`MeshWarning`) because
            open3d's decimation does not carry them; vertex colours are kept.
        target_faces: the wanted face count (``>= 4``); a mesh already at or below it is returned as is.

    Raises:
        ImportError: open3d is not installed (the message says how to install it).
        ValueError: ``target_faces`` is not an int >= 4.
    """
    fn = "Mesh.decimated()"
    if isinstance(target_faces, bool) or not isinstance(target_faces, int) or target_faces < 4:
        raise ValueError(f"{fn}: target_faces must be an int >= 4, got {target_faces!r}")
    if mesh.num_faces <= target_faces:
        return mesh
    o3d = _import_open3d(fn)
    if mesh.uv is not None:
        warnings.warn(f"{fn}: decimation drops the mesh's UVs and texture; unwrap again afterwards "
                      "(csdkit.uv.unwrap_uv)", MeshWarning, stacklevel=3)
    tm = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.detach().cpu().double().numpy()),
        o3d.utility.Vector3iVector(mesh.faces.cpu().numpy().astype(np.int32)))
    if mesh.vertex_colors is not None:
        tm.vertex_colors = o3d.utility.Vector3dVector(mesh.vertex_colors.detach().cpu().double().numpy())
    out = tm.simplify_quadric_decimation(target_number_of_triangles=int(target_faces))
    out = out.remove_degenerate_triangles().remove_unreferenced_vertices()
    v = torch.from_numpy(np.asarray(out.vertices)).to(device=mesh.device, dtype=mesh.vertices.dtype)
    f = torch.from_numpy(np.asarray(out.triangles).astype(np.int64)).to(mesh.device)
    vc = None
    if mesh.vertex_colors is not None and out.has_vertex_colors():
        vc = torch.from_numpy(np.asarray(out.vertex_colors)).to(device=mesh.device, dtype=torch.float32)
    return Mesh(v, f, vertex_colors=vc)
