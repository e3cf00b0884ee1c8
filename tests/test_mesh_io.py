"""csdkit.Mesh: construction and validation, loading every supported format, materials, clean-up,
normalization. Fixture meshes are generated with trimesh into tmp_path."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import csdkit
from csdkit.geometry import Mesh, MeshWarning
from csdkit.geometry.mesh_cleanup import open3d_available
from csdkit.io import linear_to_srgb, srgb_to_linear


def _corner_positions(mesh: Mesh) -> np.ndarray:
    """Per-face corner positions, sorted, so two meshes of the same surface compare equal."""
    tri = mesh.vertices[mesh.faces].detach().cpu().double().numpy().round(5)
    return np.array(sorted(map(tuple, tri.reshape(len(tri), -1))))


def _signed_volume(mesh: Mesh) -> float:
    v = mesh.vertices.double()[mesh.faces]
    return float(torch.linalg.det(v).sum() / 6.0)


def _textured_box(color_image: np.ndarray, **mat_kw) -> trimesh.Trimesh:
    box = trimesh.creation.box()
    uv = np.random.default_rng(0).random((len(box.vertices), 2)) * 0.8 + 0.1
    mat = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(color_image), **mat_kw)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, material=mat)
    return box


# ---- construction ----------------------------------------------------------------------------------
def test_construct_and_basic_properties(device):
    tm = trimesh.creation.icosphere(subdivisions=1)
    mesh = Mesh(torch.tensor(tm.vertices, dtype=torch.float32, device=device),
                torch.tensor(tm.faces, dtype=torch.int32, device=device))
    assert mesh.faces.dtype == torch.int64 and mesh.faces_int32.dtype == torch.int32
    assert (mesh.num_vertices, mesh.num_faces) == (len(tm.vertices), len(tm.faces))
    assert mesh.device.type == device and not mesh.has_uv and not mesh.has_texture
    # vertex normals of a unit sphere point radially outwards
    n = mesh.vertex_normals()
    torch.testing.assert_close(n, torch.nn.functional.normalize(mesh.vertices, dim=-1), atol=0.05, rtol=0)
    assert _signed_volume(mesh.to("cpu")) > 0
    assert mesh.to("cpu").device.type == "cpu"
    assert "faces=80" in repr(mesh)


def test_vertex_normals_cache_follows_in_place_edits():
    mesh = Mesh.from_trimesh(trimesh.creation.box())
    n1 = mesh.vertex_normals()
    assert mesh.vertex_normals() is n1  # cached
    mesh.vertices.mul_(torch.tensor([1.0, 1.0, 3.0]))  # in-place edit bumps the tensor version
    n2 = mesh.vertex_normals()
    assert n2 is not n1 and float((n2 - n1).abs().max()) > 0.1
    v = mesh.vertices.clone().requires_grad_(True)
    with_grad = Mesh(v, mesh.faces)
    with_grad.vertex_normals().sum().backward()  # never cached while tracking gradients
    assert v.grad is not None and with_grad.__dict__.get("_normals_cache") is None


def test_numpy_input_becomes_float32_and_per_vertex_uv():
    tm = trimesh.creation.box()
    uv = np.random.default_rng(0).random((8, 2))
    mesh = Mesh(tm.vertices, tm.faces, uv=uv)
    assert mesh.vertices.dtype == torch.float32 and mesh.uv.dtype == torch.float32
    assert torch.equal(mesh.face_uv, mesh.faces)  # per-vertex UVs share the position indexing


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(vertices=[[0, 0, 0]], faces=[[0, 0, 0]]), TypeError, ["vertices", "list"]),
    (dict(vertices=torch.zeros(3, 3), faces=torch.zeros(1, 3)), TypeError,
     ["faces", "int32 or int64", "float32"]),
    (dict(vertices=torch.zeros(3, 2), faces=torch.zeros(1, 3, dtype=torch.int64)), ValueError,
     ["vertices", "[N, 3]"]),
    (dict(vertices=torch.zeros(3, 3), faces=torch.zeros(1, 4, dtype=torch.int64)), ValueError,
     ["faces", "[F, 3]"]),
    (dict(vertices=torch.tensor([[0.0, 0, 0], [1, 0, 0], [math.nan, 1, 0]]), faces=torch.tensor([[0, 1, 2]])),
     ValueError, ["NaN or Inf", "vertices"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, 5]])), ValueError,
     ["out of range", "3 entries", "5"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, -1]])), ValueError, ["out of range"]),
    (dict(vertices=torch.eye(3), faces=torch.zeros(0, 3, dtype=torch.int64)), ValueError, ["no faces"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, 2]]), texture=torch.rand(4, 4, 3)), ValueError,
     ["texture needs uv"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, 2]]), uv=torch.rand(5, 2)), ValueError,
     ["per-vertex uv", "face_uv"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, 2]]), uv=torch.rand(5, 2),
          face_uv=torch.tensor([[0, 1, 7]])), ValueError, ["face_uv", "out of range"]),
    (dict(vertices=torch.eye(3), faces=torch.tensor([[0, 1, 2]]), vertex_colors=torch.rand(2, 3)), ValueError,
     ["vertex_colors", "V=3"]),
])
def test_construct_rejects_bad_input(kwargs, exc, words):
    with pytest.raises(exc) as info:
        Mesh(**kwargs)
    msg = str(info.value)
    assert msg.startswith("Mesh()")
    for w in words:
        assert w in msg, (w, msg)


def test_uint8_texture_is_scaled_and_alpha_dropped():
    tex = torch.full((2, 3, 4), 255, dtype=torch.uint8)
    mesh = Mesh(torch.eye(3), torch.tensor([[0, 1, 2]]), uv=torch.rand(3, 2), texture=tex)
    assert mesh.texture.shape == (2, 3, 3) and mesh.texture.dtype == torch.float32
    assert float(mesh.texture.min()) == 1.0


def test_face_budget_message_suggests_decimation():
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=1))
    mesh.check_face_budget(80, "op()")  # at the limit: fine
    with pytest.raises(ValueError, match=r"op\(\): the mesh has 80 faces.*decimate"):
        mesh.check_face_budget(79, "op()")


# ---- loading -------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".obj", ".glb", ".ply", ".stl", ".off"])
def test_load_every_format_keeps_the_surface(tmp_path, suffix):
    tm = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    path = tmp_path / f"box{suffix}"
    tm.export(path)
    mesh = Mesh.load(path)
    assert mesh.vertices.dtype == torch.float32 and mesh.faces.dtype == torch.int64
    # STL stores a triangle soup: loading welds it back to 8 corners
    assert (mesh.num_vertices, mesh.num_faces) == (8, 12)
    ref = Mesh.from_trimesh(tm)
    np.testing.assert_allclose(_corner_positions(mesh), _corner_positions(ref), atol=1e-5)
    assert _signed_volume(mesh) == pytest.approx(6.0, rel=1e-5)


def test_load_gltf_with_external_buffer(tmp_path):
    tm = trimesh.creation.icosphere(subdivisions=1)
    files = trimesh.Scene(tm).export(file_type="gltf")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    mesh = Mesh.load(tmp_path / "model.gltf")
    assert mesh.num_faces == 80


def test_load_scene_applies_node_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), node_name="a",
                       transform=trimesh.transformations.translation_matrix([5, 0, 0]))
    rot = trimesh.transformations.rotation_matrix(math.pi / 2, [0, 0, 1])
    rot[:3, 3] = [0, -5, 0]
    scene.add_geometry(trimesh.creation.box(extents=(2, 1, 1)), node_name="b", transform=rot)
    scene.export(tmp_path / "scene.glb")
    mesh = Mesh.load(tmp_path / "scene.glb")
    assert mesh.num_faces == 24
    lo, hi = (t.tolist() for t in mesh.bounds())
    np.testing.assert_allclose(lo, [-0.5, -6.0, -0.5], atol=1e-5)  # box b: rotated (2 along y), at y = -5
    np.testing.assert_allclose(hi, [5.5, 0.5, 0.5], atol=1e-5)


def test_load_triangulates_quads_and_polygons(tmp_path):
    (tmp_path / "poly.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 3 0 0\nv 3 1 0\nv 2.5 1.5 0\nv 2 1 0\n"
        "f 1 2 3 4\nf 5 6 7 8 9\n")
    mesh = Mesh.load(tmp_path / "poly.obj")
    assert mesh.num_faces == 2 + 3
    assert float(mesh.face_areas().sum()) == pytest.approx(1.0 + 1.25, rel=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError) as info:
        Mesh.load(tmp_path / "thing.xyz")
    assert "'.xyz'" in str(info.value) and ".obj" in str(info.value) and ".glb" in str(info.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        Mesh.load(tmp_path / "missing.obj")
    (tmp_path / "empty.stl").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        Mesh.load(tmp_path / "empty.stl")
    (tmp_path / "bad.glb").write_bytes(b"definitely not a glb file")
    with pytest.raises(ValueError, match=r"could not read .*bad\.glb as GLB"):
        Mesh.load(tmp_path / "bad.glb")
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(ValueError, match="no faces"):
        Mesh.load(tmp_path / "points.obj")
    (tmp_path / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="NaN or Inf"):
        Mesh.load(tmp_path / "nan.obj")
    (tmp_path / "range.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    with pytest.raises(ValueError, match="out of range"):
        Mesh.load(tmp_path / "range.ply")


def test_load_drops_degenerate_faces_with_a_warning(tmp_path):
    (tmp_path / "degen.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 1 3\nf 1 2 4\n")  # repeated index, collinear
    with pytest.warns(MeshWarning, match="dropped 2 degenerate"):
        mesh = Mesh.load(tmp_path / "degen.obj")
    assert mesh.num_faces == 1
    (tmp_path / "all_degen.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="all 1 faces are degenerate"):
        Mesh.load(tmp_path / "all_degen.obj")


# ---- materials -----------------------------------------------------------------------------------
def test_load_single_texture_glb_and_obj(tmp_path):
    img = (np.random.default_rng(1).random((8, 16, 3)) * 255).astype(np.uint8)
    box = _textured_box(img)
    box.export(tmp_path / "tex.glb")
    box.export(tmp_path / "tex.obj")
    expect_uv = np.asarray(box.visual.uv)[np.asarray(box.faces)]
    for name in ("tex.glb", "tex.obj"):
        mesh = Mesh.load(tmp_path / name)
        assert mesh.has_texture and mesh.texture.shape == (8, 16, 3)
        np.testing.assert_allclose(mesh.texture.numpy(), img / 255.0, atol=1e-6)
        np.testing.assert_allclose(mesh.uv[mesh.face_uv].numpy(), expect_uv, atol=1e-6)


def test_base_color_factor_multiplies_in_linear_space(tmp_path):
    img = np.full((4, 4, 3), 200, dtype=np.uint8)
    _textured_box(img, baseColorFactor=[0.5, 1.0, 1.0, 1.0]).export(tmp_path / "factor.glb")
    mesh = Mesh.load(tmp_path / "factor.glb")
    expected_r = linear_to_srgb(srgb_to_linear(np.array(200 / 255.0)) * 128 / 255)  # trimesh stores uint8
    assert float(mesh.texture[0, 0, 0]) == pytest.approx(float(expected_r), abs=1e-4)
    assert float(mesh.texture[0, 0, 1]) == pytest.approx(200 / 255.0, abs=1e-6)


def test_several_materials_are_merged_into_one_atlas(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    green = np.zeros((16, 8, 3), np.uint8)
    green[..., 1] = 255
    a = _textured_box(red)
    b = _textured_box(green)
    b.apply_translation([3, 0, 0])
    c = trimesh.creation.box()
    c.apply_translation([-3, 0, 0])
    c.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        baseColorFactor=[0.0, 0.0, 1.0, 1.0]))
    scene = trimesh.Scene([a, b, c])
    scene.export(tmp_path / "multi.glb")
    mesh = Mesh.load(tmp_path / "multi.glb")
    assert mesh.num_faces == 36 and mesh.has_texture
    # sample the atlas (nearest texel) at every corner UV: each part shows its own colour
    h, w, _ = mesh.texture.shape
    uv = mesh.uv[mesh.face_uv]  # [F, 3, 2]
    cols = (uv[..., 0] * w).long().clamp(0, w - 1)
    rows = ((1 - uv[..., 1]) * h).long().clamp(0, h - 1)
    sampled = mesh.texture[rows, cols]  # [F, 3, 3]
    centre_x = mesh.vertices[mesh.faces].mean(dim=1)[:, 0]
    for sel, rgb in ((centre_x.abs() < 1, [1, 0, 0]), (centre_x > 2, [0, 1, 0]), (centre_x < -2, [0, 0, 1])):
        assert int(sel.sum()) == 12
        torch.testing.assert_close(sampled[sel], torch.tensor(rgb, dtype=torch.float32).expand(12, 3, 3))


def test_untextured_colours_become_vertex_colors(tmp_path):
    tm = trimesh.creation.icosphere(subdivisions=1)
    colors = (np.random.default_rng(2).random((len(tm.vertices), 3)) * 255).astype(np.uint8)
    tm.visual = trimesh.visual.ColorVisuals(tm, vertex_colors=colors)
    tm.export(tmp_path / "colored.ply")
    mesh = Mesh.load(tmp_path / "colored.ply")
    assert mesh.has_vertex_colors and not mesh.has_texture
    np.testing.assert_allclose(mesh.vertex_colors.numpy(), colors / 255.0, atol=1e-6)


# ---- clean-up and decimation ----------------------------------------------------------------------
def test_cleaned_merges_and_drops():
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [5, 5, 5], [0, 0, 1]], dtype=torch.float32)
    f = torch.tensor([[0, 1, 2], [0, 3, 2], [0, 2, 1], [0, 1, 5], [0, 0, 1]])
    mesh = Mesh(v, f, vertex_colors=torch.rand(6, 3))
    with pytest.warns(MeshWarning) as rec:
        clean = mesh.cleaned()
    msg = str(rec[0].message)
    for part in ("merged 1 duplicate vertices", "1 degenerate", "2 duplicate faces", "1 unreferenced"):
        assert part in msg, msg
    assert (clean.num_vertices, clean.num_faces) == (4, 2)
    np.testing.assert_allclose(_corner_positions(clean), _corner_positions(Mesh(v, f[[0, 3]])))
    torch.testing.assert_close(clean.vertex_colors, mesh.vertex_colors[[0, 1, 2, 5]])


def test_cleaned_keeps_separately_indexed_uvs():
    tm = trimesh.creation.box()
    mesh = Mesh(torch.tensor(np.concatenate([tm.vertices, tm.vertices]), dtype=torch.float32),
                torch.tensor(tm.faces + 8), uv=torch.rand(16, 2))  # every face uses the duplicate copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshWarning)
        clean = mesh.cleaned()
    assert clean.num_vertices == 8
    torch.testing.assert_close(clean.uv[clean.face_uv], mesh.uv[mesh.face_uv])


@pytest.mark.skipif(open3d_available(), reason="checks the message shown without open3d")
def test_decimate_without_open3d_says_how_to_install():
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=2))
    with pytest.raises(ImportError, match="pip install open3d"):
        mesh.decimated(100)
    assert mesh.decimated(1000) is mesh  # already small enough: no open3d needed
    with pytest.raises(ValueError, match="target_faces"):
        mesh.decimated(2)


def test_decimate_with_open3d():
    pytest.importorskip("open3d")
    mesh = Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3))
    small = mesh.decimated(200)
    assert 100 <= small.num_faces <= 200
    assert _signed_volume(small) == pytest.approx(_signed_volume(mesh), rel=0.1)


# ---- normalization -------------------------------------------------------------------------------
def test_normalized_rotates_z_up_to_y_up(capsys):
    # a Z-up object: tall along +z, its front (a bump) towards -y, centred off-origin
    tall = trimesh.creation.box(extents=(1.0, 1.0, 4.0))
    bump = trimesh.creation.box(extents=(0.2, 0.5, 0.2))
    bump.apply_translation([0, -0.75, 0])
    tm = trimesh.util.concatenate([tall, bump])
    tm.apply_translation([10, 20, 30])
    mesh = Mesh.from_trimesh(tm)
    out, m = mesh.normalized(up="+z", front="-y", scale=2.0, return_transform=True)
    printed = capsys.readouterr().out
    assert "up axis is +z" in printed and "front is -y" in printed
    lo, hi = out.bounds()
    torch.testing.assert_close((lo + hi) / 2, torch.zeros(3), atol=1e-5, rtol=0)
    assert float(out.vertices.norm(dim=1).max()) == pytest.approx(2.0, rel=1e-5)
    extent = hi - lo
    assert int(extent.argmax()) == 1  # the tall axis is now +Y
    bump_centre = out.vertices[8:].mean(dim=0)  # the bump's 8 corners come after the tall box's
    assert float(bump_centre[2]) > 0.3 and abs(float(bump_centre[0])) < 1e-5  # the front faces +Z
    assert _signed_volume(out) > 0  # a rotation, not a mirror: winding stays outward
    back = out.transformed(torch.linalg.inv(m))
    torch.testing.assert_close(back.vertices, mesh.vertices, atol=1e-4, rtol=0)


def test_normalized_identity_axes_and_errors():
    mesh = Mesh.from_trimesh(trimesh.creation.box(extents=(2, 2, 2)))
    out = mesh.normalized(verbose=False)
    torch.testing.assert_close(out.vertices, mesh.vertices / math.sqrt(3.0), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="perpendicular"):
        mesh.normalized(up="+y", front="-y")
    with pytest.raises(ValueError, match=r"up must be one of"):
        mesh.normalized(up="z")
    with pytest.raises(ValueError, match="scale"):
        mesh.normalized(scale=0.0)


def test_public_names():
    assert csdkit.Mesh is Mesh
    assert csdkit.Mesh.load.__doc__ and "atlas" in csdkit.Mesh.load.__doc__
