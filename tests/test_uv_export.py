"""UV atlases (xatlas in a subprocess, fallbacks), seam dilation, baking and textured export."""

from __future__ import annotations

import json
import struct
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from csdkit.geometry import Mesh, MeshWarning
from csdkit.geometry.mesh_cleanup import open3d_available
from csdkit.io import export_mesh
from csdkit.uv import (
    UnwrapError,
    bake_vertex_colors,
    dilate_texture,
    per_triangle_atlas,
    rasterize_uv,
    transfer_texture,
    unwrap_uv,
)
from csdkit.uv import uv_unwrap as uv_unwrap_module


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=2))


@pytest.fixture(scope="module")
def unwrapped(sphere) -> Mesh:
    return unwrap_uv(sphere, resolution=256, padding=2)


def _uv_overlap_count(uv_tri: np.ndarray, n: int = 192, eps: float = 1e-6) -> int:
    """Largest number of UV triangles ``[F, 3, 2]`` that strictly contain one sample of an n x n grid."""
    g = (np.arange(n) + 0.5) / n
    p = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 1, 2)  # [P, 1, 2]
    a, b, c = uv_tri[None, :, 0], uv_tri[None, :, 1], uv_tri[None, :, 2]

    def edge(p0, p1):
        return _cross2(p1 - p0, p - p0)

    e0, e1, e2 = edge(a, b), edge(b, c), edge(c, a)
    inside = ((e0 > eps) & (e1 > eps) & (e2 > eps)) | ((e0 < -eps) & (e1 < -eps) & (e2 < -eps))
    return int(inside.sum(axis=1).max())


def _cross2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _sample_nearest(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Texel under ``uv [N, 2]`` (csdkit convention: v = 0 is the bottom row) of ``tex [H, W, C]``."""
    h, w, _ = tex.shape
    col = (uv[:, 0] * w).long().clamp(0, w - 1)
    row = ((1.0 - uv[:, 1]) * h).long().clamp(0, h - 1)
    return tex[row, col]


# ---- xatlas unwrap ---------------------------------------------------------------------------------
def test_unwrap_gives_a_valid_non_overlapping_atlas(sphere, unwrapped):
    assert torch.equal(unwrapped.faces, sphere.faces) and torch.equal(unwrapped.vertices, sphere.vertices)
    assert unwrapped.uv.shape[0] >= sphere.num_vertices  # seams duplicate UV vertices
    assert float(unwrapped.uv.min()) >= 0.0 and float(unwrapped.uv.max()) <= 1.0
    uv_tri = unwrapped.uv[unwrapped.face_uv].double().numpy()
    area = 0.5 * np.abs(_cross2(uv_tri[:, 1] - uv_tri[:, 0], uv_tri[:, 2] - uv_tri[:, 0]))
    assert area.min() > 0 and 0.3 < area.sum() <= 1.0
    assert _uv_overlap_count(uv_tri) == 1


def test_unwrap_keep_uvs(unwrapped):
    assert unwrap_uv(unwrapped, keep_uvs=True) is unwrapped
    tiled = unwrapped.replace(uv=unwrapped.uv * 3.0, face_uv=unwrapped.face_uv)
    with pytest.warns(MeshWarning, match="tiling"):
        assert unwrap_uv(tiled, keep_uvs=True) is tiled


def test_unwrap_timeout_falls_back_to_per_triangle_atlas(sphere):
    with pytest.warns(MeshWarning, match=r"xatlas timed out after 0\.001 s.*per-triangle atlas"):
        out = unwrap_uv(sphere, timeout=0.001, fallback="per_triangle", resolution=512)
    assert out.uv.shape[0] == 3 * sphere.num_faces and torch.equal(out.faces, sphere.faces)
    with pytest.raises(UnwrapError, match="timed out"):
        unwrap_uv(sphere, timeout=0.001, fallback="none")


@pytest.mark.parametrize("script, reason", [
    ("import os\nos.abort()\n", r"crashed \(signal 6\)"),
    ("import sys\nprint('xatlas said no', file=sys.stderr)\nsys.exit(2)\n", "exit status 2: xatlas said no"),
    ("pass\n", "unreadable result"),
])
def test_unwrap_survives_a_crashing_worker(sphere, tmp_path, monkeypatch, script, reason):
    worker = tmp_path / "worker.py"
    worker.write_text(script)
    monkeypatch.setattr(uv_unwrap_module, "_WORKER", worker)
    with pytest.warns(MeshWarning, match=reason):
        out = unwrap_uv(sphere, fallback="per_triangle")
    assert out.has_uv and out.num_faces == sphere.num_faces


@pytest.mark.skipif(open3d_available(), reason="with open3d the mesh is decimated instead")
def test_unwrap_too_many_faces_suggests_decimation(sphere):
    with pytest.raises(ValueError, match=r"320 faces.*decimate"):
        unwrap_uv(sphere, max_faces=100)


def test_unwrap_decimates_with_open3d(sphere):
    pytest.importorskip("open3d")
    with pytest.warns(MeshWarning, match="decimating to 200"):
        small = unwrap_uv(sphere, max_faces=200, resolution=128)
    assert small.has_uv and 100 <= small.num_faces <= 200
    with pytest.warns(MeshWarning) as rec:
        out = unwrap_uv(sphere, timeout=0.001, fallback="decimate", resolution=128)
    messages = " | ".join(str(w.message) for w in rec)
    assert "decimating to 80 faces with open3d and retrying" in messages and "per-triangle" in messages
    assert out.num_faces <= 80 and out.uv.shape[0] == 3 * out.num_faces


def test_unwrap_argument_errors(sphere):
    with pytest.raises(ValueError, match="fallback must be one of"):
        unwrap_uv(sphere, fallback="maybe")
    with pytest.raises(TypeError, match="mesh must be a csdkit.Mesh"):
        unwrap_uv(trimesh.creation.box())
    with pytest.raises(ValueError, match="padding"):
        unwrap_uv(sphere, padding=-1)


def test_worker_runs_as_a_module(sphere, tmp_path):
    import subprocess

    src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(src, positions=sphere.vertices.numpy(), faces=sphere.faces.numpy().astype(np.uint32),
             options=json.dumps({"resolution": 128, "padding": 1, "max_iterations": None}))
    proc = subprocess.run([sys.executable, "-m", "csdkit.uv._xatlas_worker", str(src), str(dst)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = np.load(dst)
    np.testing.assert_array_equal(out["vmapping"][out["indices"]], sphere.faces.numpy())


def test_per_triangle_atlas_layout():
    uv, face_uv = per_triangle_atlas(50, resolution=128, padding=2)
    assert uv.shape == (150, 2) and face_uv.shape == (50, 3)
    tri = uv[face_uv].double().numpy()
    assert _uv_overlap_count(tri, n=256) == 1
    assert tri.min() >= 2 / 128 - 1e-9 and tri.max() <= 1 - 2 / 128 + 1e-9
    signed = _cross2(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (signed > 0).all()  # counter-clockwise, like xatlas
    with pytest.warns(MeshWarning, match="coarse"):
        per_triangle_atlas(10_000, resolution=64, padding=2)


# ---- baking --------------------------------------------------------------------------------------
def test_rasterize_uv_reconstructs_the_surface(unwrapped):
    r = rasterize_uv(unwrapped, 64)
    assert r.mask.shape == (64, 64) and r.mask.dtype == torch.bool
    assert 0.25 < float(r.mask.float().mean()) < 1.0
    assert bool((r.face_id[~r.mask] == -1).all()) and bool((r.face_id[r.mask] >= 0).all())
    pos, nrm = r.position[r.mask], r.normal[r.mask]
    assert float((pos.norm(dim=-1) - 1).abs().max()) < 0.05  # points on the (unit) icosphere
    torch.testing.assert_close(nrm, F.normalize(pos, dim=-1), atol=0.1, rtol=0)
    # barycentrics of the covered texels reproduce the positions from the face corners
    corners = unwrapped.vertices[unwrapped.faces[r.face_id[r.mask]]]
    torch.testing.assert_close((r.bary[r.mask][..., None] * corners).sum(1), pos, atol=1e-5, rtol=0)


def test_bake_and_transfer_keep_colours_on_the_surface(unwrapped):
    colour = (unwrapped.vertices + 1.0) / 2.0  # a smooth function of position
    baked = bake_vertex_colors(unwrapped.replace(vertex_colors=colour), 96)
    centroid_uv = unwrapped.uv[unwrapped.face_uv].mean(dim=1)
    expected = colour[unwrapped.faces].mean(dim=1)
    torch.testing.assert_close(_sample_nearest(baked.texture, centroid_uv), expected, atol=0.03, rtol=0)
    # move the texture onto a per-triangle atlas of the same faces: same colours at the same points
    uv, face_uv = per_triangle_atlas(unwrapped.num_faces, resolution=128, padding=2)
    other = Mesh(unwrapped.vertices, unwrapped.faces, uv=uv, face_uv=face_uv)
    moved = transfer_texture(baked, other, resolution=128)
    torch.testing.assert_close(_sample_nearest(moved.texture, uv[face_uv].mean(dim=1)), expected,
                               atol=0.04, rtol=0)
    with pytest.raises(ValueError, match="no texture"):
        transfer_texture(other, baked)
    with pytest.raises(ValueError, match="no UVs"):
        rasterize_uv(Mesh(unwrapped.vertices, unwrapped.faces), 8)


def test_unwrap_rebakes_an_existing_texture(unwrapped):
    colour = (unwrapped.vertices + 1.0) / 2.0
    baked = bake_vertex_colors(unwrapped.replace(vertex_colors=colour), 96).replace(vertex_colors=None)
    with pytest.warns(MeshWarning, match="per-triangle"):
        again = unwrap_uv(baked, timeout=0.001, fallback="per_triangle", resolution=128, padding=2)
    assert again.has_texture and again.texture.shape == (128, 128, 3)
    expected = colour[unwrapped.faces].mean(dim=1)
    got = _sample_nearest(again.texture, again.uv[again.face_uv].mean(dim=1))
    torch.testing.assert_close(got, expected, atol=0.04, rtol=0)


# ---- dilation ------------------------------------------------------------------------------------
def _chart_mask(h: int = 32, w: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy - 10) ** 2 + (xx - 12) ** 2 < 40) | ((yy > 20) & (yy < 27) & (xx > 3) & (xx < 9))


@pytest.mark.parametrize("method", ["push_pull", "iterative"])
def test_dilation_keeps_charts_and_fills_gutters(method, device):
    mask = _chart_mask().to(device)
    colour = torch.tensor([0.2, 0.6, 0.9], device=device)
    tex = torch.where(mask[..., None], colour, torch.zeros(3, device=device))
    out = dilate_texture(tex, mask, method=method, iterations=40)
    assert torch.equal(out[mask], tex[mask])  # covered texels untouched, bit for bit
    torch.testing.assert_close(out, colour.expand_as(out))  # one colour in, one colour everywhere
    # bilinear lookups anywhere inside the chart (borders included) never see the background
    uv = torch.rand(1, 4000, 1, 2, device=device) * 2 - 1
    px = ((uv[0, :, 0] + 1) * 16 - 0.5).round().long().clamp(0, 31)
    inside = mask[px[:, 1], px[:, 0]]
    sample = F.grid_sample(out.permute(2, 0, 1)[None], uv, align_corners=False)[0, :, :, 0].T
    torch.testing.assert_close(sample[inside], colour.expand(int(inside.sum()), 3))
    raw = F.grid_sample(tex.permute(2, 0, 1)[None], uv, align_corners=False)[0, :, :, 0].T
    assert float((raw[inside] - colour).abs().max()) > 0.1  # without dilation the border is dark


def test_dilation_colours_are_continued_from_the_nearest_charts():
    mask = torch.zeros(16, 32, dtype=torch.bool)
    mask[:, :4] = True
    mask[:, -4:] = True
    tex = torch.zeros(16, 32, 3)
    tex[:, :4] = torch.tensor([1.0, 0.0, 0.0])
    tex[:, -4:] = torch.tensor([0.0, 0.0, 1.0])
    out = dilate_texture(tex, mask)
    assert float(out[:, 5, 0].min()) > float(out[:, 5, 2].max())  # red side stays red
    assert float(out[:, 26, 2].min()) > float(out[:, 26, 0].max())  # blue side stays blue
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # convex combinations only


def test_iterative_dilation_fills_a_band():
    mask = torch.zeros(21, 21, dtype=torch.bool)
    mask[10, 10] = True
    tex = torch.zeros(21, 21, 1)
    tex[10, 10] = 1.0
    out = dilate_texture(tex, mask, method="iterative", iterations=3)
    yy, xx = torch.meshgrid(torch.arange(21), torch.arange(21), indexing="ij")
    band = torch.maximum((yy - 10).abs(), (xx - 10).abs()) <= 3
    assert bool((out[band] == 1.0).all()) and bool((out[~band] == 0.0).all())


def test_dilation_batched_float_mask_and_errors():
    mask = _chart_mask()
    tex = torch.rand(2, 32, 32, 3) * mask[..., None]
    out = dilate_texture(tex, mask.float())
    assert out.shape == tex.shape and bool((out[:, ~mask].sum(-1) > 0).all())
    empty = torch.zeros(32, 32, dtype=torch.bool)
    assert torch.equal(dilate_texture(tex[0], empty), tex[0])
    tex.requires_grad_(True)
    dilate_texture(tex, mask).sum().backward()
    assert float(tex.grad[:, mask].min()) >= 1.0  # a chart texel feeds itself and the gutter
    with pytest.raises(ValueError, match=r"mask must be \[H, W\]"):
        dilate_texture(tex, torch.ones(16, 16, dtype=torch.bool))
    with pytest.raises(TypeError, match="float tensor"):
        dilate_texture(torch.zeros(4, 4, 3, dtype=torch.int64), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="method must be one of"):
        dilate_texture(tex, mask, method="blur")


# ---- export --------------------------------------------------------------------------------------
def _read_glb(path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    assert jtype == b"JSON"
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<I4s", data, 20 + jlen)
    assert btype == b"BIN\x00"
    return gltf, data[28 + jlen:28 + jlen + blen]


def _accessor(gltf: dict, blob: bytes, index: int) -> np.ndarray:
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    dtype = {5126: np.float32, 5125: np.uint32}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc["type"]]
    return np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"]).reshape(-1, width)


@pytest.fixture(scope="module")
def textured(unwrapped) -> Mesh:
    g = torch.Generator().manual_seed(3)
    return unwrapped.replace(texture=torch.rand(16, 32, 3, generator=g))


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_textured_round_trip(textured, tmp_path, suffix):
    path = export_mesh(textured, tmp_path / f"model{suffix}")
    if suffix == ".obj":
        assert {p.name for p in tmp_path.iterdir()} == {"model.obj", "model.mtl", "model.png"}
    back = Mesh.load(path)
    assert (back.num_vertices, back.num_faces) == (textured.num_vertices, textured.num_faces)
    torch.testing.assert_close(back.vertices[back.faces], textured.vertices[textured.faces],
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(back.uv[back.face_uv], textured.uv[textured.face_uv], atol=1e-6, rtol=0)
    assert back.texture.shape == textured.texture.shape
    torch.testing.assert_close(back.texture, textured.texture, atol=0.5 / 255 + 1e-6, rtol=0)


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_uv_only_round_trip_invents_no_colours(unwrapped, tmp_path, suffix):
    back = Mesh.load(export_mesh(unwrapped, tmp_path / f"uv{suffix}"))
    assert not back.has_texture and not back.has_vertex_colors
    torch.testing.assert_close(back.uv[back.face_uv], unwrapped.uv[unwrapped.face_uv], atol=1e-6, rtol=0)


def test_glb_layout_flips_v_and_declares_a_matte_base_colour(textured, tmp_path):
    gltf, blob = _read_glb(export_mesh(textured, tmp_path / "m.glb"))
    prim = gltf["meshes"][0]["primitives"][0]
    material = gltf["materials"][prim["material"]]["pbrMetallicRoughness"]
    assert material["baseColorTexture"]["index"] == 0 and material["metallicFactor"] == 0.0
    assert gltf["images"][0]["mimeType"] == "image/png"
    pos = _accessor(gltf, blob, prim["attributes"]["POSITION"])
    tc = _accessor(gltf, blob, prim["attributes"]["TEXCOORD_0"])
    idx = _accessor(gltf, blob, prim["indices"]).reshape(-1, 3)
    np.testing.assert_allclose(pos[idx], textured.vertices[textured.faces].numpy(), atol=0)
    uv = textured.uv[textured.face_uv].numpy()
    np.testing.assert_allclose(tc[idx][..., 0], uv[..., 0], atol=1e-7)
    np.testing.assert_allclose(tc[idx][..., 1], 1.0 - uv[..., 1], atol=1e-7)  # glTF: origin top-left
    acc = gltf["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_allclose(acc["min"], pos.min(axis=0))


def test_export_texture_override_vertex_colours_and_formats(unwrapped, tmp_path):
    override = torch.zeros(8, 8, 3)
    override[..., 1] = 1.0
    back = Mesh.load(export_mesh(unwrapped, tmp_path / "o.glb", texture=override.requires_grad_(True)))
    torch.testing.assert_close(back.texture, override.detach())
    colored = Mesh(unwrapped.vertices, unwrapped.faces, vertex_colors=torch.rand(unwrapped.num_vertices, 3))
    for suffix, tol in ((".glb", 1e-5), (".obj", 0.5 / 255 + 1e-6), (".ply", 0.5 / 255 + 1e-6)):
        back = Mesh.load(export_mesh(colored, tmp_path / f"c{suffix}"))
        torch.testing.assert_close(back.vertex_colors, colored.vertex_colors, atol=tol, rtol=0)
    for suffix in (".stl", ".off"):
        back = Mesh.load(export_mesh(colored, tmp_path / f"g{suffix}"))
        assert back.num_faces == colored.num_faces


def test_export_errors(unwrapped, tmp_path):
    with pytest.raises(ValueError) as info:
        export_mesh(unwrapped, tmp_path / "m.fbx")
    assert "'.fbx'" in str(info.value) and ".glb" in str(info.value)
    plain = Mesh(unwrapped.vertices, unwrapped.faces)
    with pytest.raises(ValueError, match="no UVs"):
        export_mesh(plain, tmp_path / "m.glb", texture=torch.rand(4, 4, 3))
    with pytest.raises(ValueError, match=r"float \[H, W, 3\]"):
        export_mesh(unwrapped, tmp_path / "m.obj", texture=torch.rand(4, 4))
    with pytest.warns(MeshWarning, match="cannot hold a texture"):
        export_mesh(unwrapped, tmp_path / "m.ply", texture=torch.rand(4, 4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unwrapped.save(tmp_path / "plain.glb")  # Mesh.save is export_mesh
