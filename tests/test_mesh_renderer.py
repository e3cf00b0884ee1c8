"""csdkit.MeshRenderer: image orientation, outputs, shading, textures and their gradients, backends."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from csdkit import Cameras, Mesh, MeshRenderer
from csdkit.render.raster_backends import nvdiffrast_available

RES = 32


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=2))


def _quad(dtype=torch.float32, device="cpu") -> Mesh:
    """A unit square facing +Z, UV (0, 0) at its bottom-left corner, (1, 1) at the top-right."""
    v = torch.tensor([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=dtype, device=device)
    uv = torch.tensor([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=dtype, device=device)
    return Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3]], device=device), uv=uv)


def _front(device, n=1, distance=3.0) -> Cameras:
    return Cameras.from_spherical(0.0, torch.zeros(n), distance, fov_y=50.0, device=device)


def test_rows_start_at_the_top_and_columns_at_the_left(sphere, device):
    # red grows with +x (image right), green with +y (image top) for a camera in front (+Z)
    colours = torch.stack([(sphere.vertices[:, 0] + 1) / 2, (sphere.vertices[:, 1] + 1) / 2,
                           torch.zeros(sphere.num_vertices)], dim=-1)
    mesh = sphere.replace(vertex_colors=colours)
    out = MeshRenderer(RES).render(mesh, _front(device))
    rgb, mask = out["rgb"][0].cpu(), out["mask"][0, ..., 0].cpu().bool()
    top, bottom = rgb[: RES // 2][mask[: RES // 2]], rgb[RES // 2:][mask[RES // 2:]]
    left, right = rgb[:, : RES // 2][mask[:, : RES // 2]], rgb[:, RES // 2:][mask[:, RES // 2:]]
    assert float(top[:, 1].mean()) > float(bottom[:, 1].mean()) + 0.3
    assert float(right[:, 0].mean()) > float(left[:, 0].mean()) + 0.3


def test_outputs_geometry(sphere, device):
    out = MeshRenderer(RES).render(sphere, _front(device, n=2))
    assert set(out) == {"rgb", "albedo", "normal", "depth", "mask", "alpha", "position", "triangle_id"}  # no uv
    for key, ch in (("rgb", 3), ("albedo", 3), ("normal", 3), ("depth", 1), ("mask", 1), ("position", 3)):
        assert out[key].shape == (2, RES, RES, ch) and out[key].dtype == torch.float32, key
        assert out[key].device.type == device
    mask = out["mask"][..., 0].bool()
    # a unit sphere 3 units away in a 50-degree view covers pi r^2 / 4 of the image,
    # with r = tan(asin(1/3)) / tan(25 deg)
    r = math.tan(math.asin(1 / 3)) / math.tan(math.radians(25))
    assert float(mask.float().mean()) == pytest.approx(math.pi * r * r / 4, rel=0.08)
    c = RES // 2
    assert float(out["depth"][0, c, c, 0]) == pytest.approx(2.0, abs=0.03)
    torch.testing.assert_close(out["normal"][0, c, c].cpu(), torch.tensor([0.0, 0.0, 1.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(out["position"][0, c, c].cpu(), torch.tensor([0.0, 0.0, 1.0]),
                               atol=0.05, rtol=0)
    assert bool((out["triangle_id"][~mask] == -1).all()) and bool((out["triangle_id"][mask] >= 0).all())
    assert bool((out["depth"][~mask] == 0).all())
    assert bool((out["rgb"][~mask] == 1.0).all())  # white background
    normals = out["normal"][mask]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(normals.shape[0], device=device))
    to_cam = _front(device).position[0] - out["position"][mask]
    assert bool(((normals * to_cam).sum(-1) >= 0).all())  # turned towards the camera
    torch.testing.assert_close(out["albedo"][mask], torch.full_like(normals, 0.8))  # default colour


def test_shading_modes(sphere, device):
    r = MeshRenderer(RES, default_color=1.0)
    cams = _front(device)
    lam = r.render(sphere, cams, shading="lambertian", ambient=0.2, diffuse=0.8)["rgb"][0]
    c = RES // 2
    assert float(lam[c, c, 0]) == pytest.approx(1.0, abs=0.02)  # headlight hits the centre head-on
    mask = r.render(sphere, cams)["mask"][0, ..., 0].bool()
    edge = mask & ~torch.nn.functional.max_pool2d((~mask)[None].float(), 3, 1, 1)[0].bool().logical_not()
    assert float(lam[edge].mean()) < float(lam[c, c, 0]) - 0.2  # darker at grazing angles
    side = r.render(sphere, cams, shading="lambertian", light_dir=[1.0, 0.0, 0.0], ambient=0.0)["rgb"][0]
    assert float(side[c, c + 8, 0]) > float(side[c, c - 8, 0]) + 0.3  # lit from +x: the right side
    nrm = r.render(sphere, cams, shading="normal")
    m = nrm["mask"][0, ..., 0].bool()
    torch.testing.assert_close(nrm["rgb"][0][m], (nrm["normal"][0][m] + 1) / 2)
    dark = sphere.replace(vertex_colors=torch.zeros(sphere.num_vertices, 3))
    tl = r.render(dark, cams, shading="textureless", ambient=0.2, diffuse=0.8)
    torch.testing.assert_close(tl["rgb"][0][m], lam[m])  # white albedo whatever the colours


def test_texture_orientation_follows_obj_convention(device, tmp_path):
    tex = torch.zeros(8, 8, 3, device=device)
    tex[:4, :, 0] = 1.0  # image top half red
    tex[4:, :, 2] = 1.0  # bottom half blue
    tex[:, 4:, 1] = 1.0  # right half green
    mesh = _quad(device=device).replace(texture=tex)
    r = MeshRenderer(RES, texture_filter="linear")
    cams = _front(device)
    rgb = r.render(mesh, cams)["rgb"][0].cpu()
    c = RES // 2
    assert rgb[c - 5, c - 5].tolist() == [1.0, 0.0, 0.0]  # top-left of the quad: red, no green
    assert rgb[c + 5, c + 5].tolist() == [0.0, 1.0, 1.0]  # bottom-right: blue + green
    # the same picture after a GLB round trip (the file format flips v; loading flips it back)
    back = Mesh.load(mesh.to("cpu").save(tmp_path / "quad.glb")).to(device)
    torch.testing.assert_close(r.render(back, cams)["rgb"][0].cpu(), rgb)


def test_texture_argument_overrides_and_receives_gradients(sphere, device):
    from csdkit.uv import per_triangle_atlas

    uv, face_uv = per_triangle_atlas(sphere.num_faces, resolution=128, padding=1)
    mesh = Mesh(sphere.vertices, sphere.faces, uv=uv, face_uv=face_uv, texture=torch.zeros(8, 8, 3))
    mesh = mesh.to(device)
    param = torch.full((128, 128, 3), 0.5, device=device, requires_grad=True)
    r = MeshRenderer(RES, texture_filter="linear")
    out = r.render(mesh, _front(device), texture=param, background="black")
    assert set(out) >= {"uv"} and out["uv"].shape == (1, RES, RES, 2)
    m = out["mask"][0, ..., 0].bool()
    torch.testing.assert_close(out["rgb"][0][m], torch.full((int(m.sum()), 3), 0.5, device=device))
    out["rgb"].sum().backward()
    g = param.grad
    assert float(g.sum()) == pytest.approx(3 * float(m.sum()), rel=1e-4)  # every lit pixel passes 1 back
    back_faces = mesh.vertices[mesh.faces].mean(1)[:, 2] < -0.5  # never seen from the front camera
    cell_uv = (uv[face_uv][back_faces.cpu()].mean(1) * 128).long()
    assert float(g[127 - cell_uv[:, 1], cell_uv[:, 0]].abs().max()) == 0.0
    # the default (trilinear mip-mapped) filter passes gradients too, into the full-resolution texture
    param.grad = None
    MeshRenderer(RES).render(mesh, _front(device), texture=param)["rgb"].sum().backward()
    assert float(param.grad.sum()) == pytest.approx(3 * float(m.sum()), rel=1e-4)


def test_texture_gradcheck_float64():
    mesh = _quad(torch.float64)
    cams = Cameras.from_spherical(10.0, 20.0, 3.0, fov_y=40.0)
    r = MeshRenderer(6, texture_filter="linear")
    tex = torch.rand(3, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: r.render(mesh, cams, texture=t, shading="lambertian")["rgb"],
                                    (tex,), eps=1e-6, atol=1e-5)


def test_vertex_colours_and_positions_receive_gradients(sphere, device):
    v = sphere.vertices.clone().to(device).requires_grad_(True)
    colours = torch.rand(sphere.num_vertices, 3, device=device, requires_grad=True)
    mesh = Mesh(v, sphere.faces.to(device), vertex_colors=colours)
    out = MeshRenderer(RES).render(mesh, _front(device), shading="lambertian")
    (out["rgb"] * torch.rand_like(out["rgb"])).sum().backward()
    assert float(colours.grad.abs().sum()) > 0 and float(v.grad.abs().sum()) > 0
    assert bool(torch.isfinite(v.grad).all())


def test_backgrounds_and_batched_textures(device):
    mesh = _quad(device=device).replace(texture=torch.ones(4, 4, 3, device=device))
    cams = Cameras.orbit(3, elevation=0.0, distance=6.0, device=device)
    r = MeshRenderer((RES, RES + 8), texture_filter="linear")
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = r.render(mesh, cams, background="random", generator=g1)["rgb"]
    b = r.render(mesh, cams, background="random", generator=g2)["rgb"]
    assert a.shape == (3, RES, RES + 8, 3) and torch.equal(a, b)
    assert not torch.equal(a[0, 0, 0], a[1, 0, 0])  # one colour per view
    bg = torch.rand(3, 3, device=device)
    out = r.render(mesh, cams, background=bg)
    torch.testing.assert_close(out["rgb"][:, 0, 0], bg)
    per_view = torch.rand(3, 4, 4, 3, device=device)
    rgb = r.render(mesh, cams[:1].to(device), texture=per_view[:1])["rgb"]
    assert rgb.shape == (1, RES, RES + 8, 3)
    out = r.render(mesh, cams, texture=per_view, background=0.25)
    assert float(out["rgb"][0, 0, 0, 0]) == 0.25


def test_render_errors(sphere, device):
    r = MeshRenderer(RES)
    cams = _front(device)
    with pytest.raises(TypeError, match="mesh must be a csdkit.Mesh"):
        r.render(trimesh.creation.box(), cams)
    with pytest.raises(TypeError, match="cameras must be csdkit.Cameras"):
        r.render(sphere, torch.eye(4))
    with pytest.raises(ValueError, match="shading must be one of"):
        r.render(sphere, cams, shading="phong")
    with pytest.raises(ValueError, match="mesh has no UVs"):
        r.render(sphere, cams, texture=torch.rand(4, 4, 3, device=device))
    quad = _quad(device=device)
    with pytest.raises(ValueError, match=r"texture must be \[H, W, C\] or \[B, H, W, C\] with B = 1"):
        r.render(quad, cams, texture=torch.rand(2, 4, 4, 3, device=device))
    with pytest.raises(TypeError, match="float tensor"):
        r.render(quad, cams, texture=torch.zeros(4, 4, 3, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="background must be one of"):
        r.render(sphere, cams, background="blue")
    with pytest.raises(ValueError, match="background must be RGB"):
        r.render(sphere, cams, background=torch.rand(5, device=device))
    with pytest.raises(ValueError, match="light_dir"):
        r.render(sphere, cams, shading="lambertian", light_dir=torch.rand(2, 3))
    with pytest.raises(ValueError, match="backend must be one of"):
        MeshRenderer(RES, backend="opengl")
    with pytest.raises(ValueError, match="resolution"):
        MeshRenderer(0)


def test_nvdiffrast_backend_is_refused_on_cpu(sphere):
    with pytest.raises(ValueError, match="nvdiffrast needs CUDA tensors"):
        MeshRenderer(RES, backend="nvdiffrast").render(sphere, _front("cpu"))
    assert MeshRenderer(RES).backend_for("cpu") == "csdkit"


def test_compiled_kernels_match_the_reference_path(sphere, monkeypatch, device):
    from csdkit.uv import per_triangle_atlas

    uv, face_uv = per_triangle_atlas(sphere.num_faces, resolution=128, padding=1)
    mesh = Mesh(sphere.vertices, sphere.faces, uv=uv, face_uv=face_uv, texture=torch.rand(128, 128, 3))
    mesh = mesh.to(device)
    cams = Cameras.orbit(2, device=device)
    r = MeshRenderer(RES)
    out = r.render(mesh, cams, shading="lambertian")
    monkeypatch.setenv("CSDKIT_FORCE_REFERENCE", "1")
    ref = r.render(mesh, cams, shading="lambertian")
    for key in ("rgb", "mask", "depth", "normal", "uv"):
        torch.testing.assert_close(out[key], ref[key], atol=1e-4, rtol=1e-4, msg=key)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and nvdiffrast_available()),
                    reason="needs CUDA and nvdiffrast for the parity test")
def test_nvdiffrast_parity(sphere):
    from csdkit.uv import per_triangle_atlas

    uv, face_uv = per_triangle_atlas(sphere.num_faces, resolution=128, padding=2)
    mesh = Mesh(sphere.vertices, sphere.faces, uv=uv, face_uv=face_uv, texture=torch.rand(128, 128, 3))
    mesh = mesh.to("cuda")
    cams = Cameras.orbit(4, device="cuda")
    a = MeshRenderer(64, backend="csdkit").render(mesh, cams, shading="lambertian")
    b = MeshRenderer(64, backend="nvdiffrast").render(mesh, cams, shading="lambertian")
    both = (a["mask"] * b["mask"]).bool()[..., 0]
    assert float((a["mask"] != b["mask"]).float().mean()) < 0.005  # fill rules may differ on exact edges
    same_tri = both & (a["triangle_id"] == b["triangle_id"])
    assert float(same_tri.float().sum() / both.float().sum()) > 0.99
    torch.testing.assert_close(a["rgb"][same_tri], b["rgb"][same_tri], atol=2e-3, rtol=0)
    torch.testing.assert_close(a["depth"][same_tri], b["depth"][same_tri], atol=1e-4, rtol=1e-4)


def test_antialias_is_off_by_default_and_blends_only_the_outline(sphere, device):
    cams = Cameras.orbit(2, device=device)
    plain = MeshRenderer(RES).render(sphere, cams, background="black")
    assert torch.equal(plain["alpha"], plain["mask"])
    smooth = MeshRenderer(RES, antialias=True).render(sphere, cams, background="black")
    mask = smooth["mask"][..., 0]
    pad = torch.nn.functional.pad(mask[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    outline = (pad[:, :-2, 1:-1] != mask) | (pad[:, 2:, 1:-1] != mask) | (pad[:, 1:-1, :-2] != mask) | \
        (pad[:, 1:-1, 2:] != mask)
    changed = (smooth["rgb"] - plain["rgb"]).abs().amax(-1) > 0
    assert int(changed.sum()) > 20 and not bool((changed & ~outline).any())
    alpha = smooth["alpha"][..., 0]
    assert bool(((alpha >= 0) & (alpha <= 1)).all())
    assert bool((alpha[~outline] == mask[~outline]).all())
    assert 0 < float((alpha - mask).abs()[outline].mean()) < 0.5


def test_antialias_gives_a_silhouette_gradient_that_fits_an_outline(sphere, device):
    # Only the outline carries the offset: flat albedo, alpha loss. Without antialiasing there is no
    # gradient at all; with it, gradient descent moves the sphere onto the target's silhouette.
    mesh = sphere.to(device)
    cams = Cameras.orbit(4, elevation=15.0, distance=3.0, device=device)
    target_shift = torch.tensor([0.25, -0.15, 0.1], device=device)
    renderer = MeshRenderer(RES, antialias=True)
    with torch.no_grad():
        target = renderer.render(mesh.replace(vertices=mesh.vertices + target_shift), cams)["alpha"]

    shift = torch.zeros(3, device=device, requires_grad=True)
    hard = MeshRenderer(RES).render(mesh.replace(vertices=mesh.vertices + shift), cams)
    assert not hard["alpha"].requires_grad and not hard["rgb"].requires_grad

    optimizer = torch.optim.Adam([shift], lr=0.02)
    start = None
    for _ in range(60):
        alpha = renderer.render(mesh.replace(vertices=mesh.vertices + shift), cams)["alpha"]
        loss = ((alpha - target) ** 2).mean()
        start = float(loss.detach()) if start is None else start
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1 * start
    assert float((shift.detach() - target_shift).norm()) < 0.25 * float(target_shift.norm())


def test_antialias_compiled_kernels_match_the_reference_path(sphere, monkeypatch, device):
    cams = Cameras.orbit(2, device=device)
    mesh = sphere.to(device).replace(vertex_colors=torch.rand(sphere.num_vertices, 3, device=device))
    r = MeshRenderer(RES, antialias=True)
    out = r.render(mesh, cams, shading="lambertian")
    monkeypatch.setenv("CSDKIT_FORCE_REFERENCE", "1")
    ref = r.render(mesh, cams, shading="lambertian")
    for key in ("rgb", "alpha"):
        torch.testing.assert_close(out[key], ref[key], atol=1e-4, rtol=1e-4, msg=key)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and nvdiffrast_available()),
                    reason="needs CUDA and nvdiffrast for the parity test")
def test_nvdiffrast_antialias_parity(sphere):
    mesh = sphere.to("cuda")
    cams = Cameras.orbit(4, device="cuda")
    a = MeshRenderer(64, backend="csdkit", antialias=True).render(mesh, cams)
    b = MeshRenderer(64, backend="nvdiffrast", antialias=True).render(mesh, cams)
    assert float((a["alpha"] - b["alpha"]).abs().mean()) < 0.01
    assert float((a["alpha"] - a["mask"]).abs().sum()) > 0 and float((b["alpha"] - b["mask"]).abs().sum()) > 0


# A sliver triangle in clip space, from a DMTet mesh of the generate job's mesh stage: at 64x64 the snapped
# coverage test takes one pixel centre that lies outside the exact triangle.
SLIVER = [[2.1569066047668457, 1.8277015686035156, 3.805082321166992, 3.9012291431427],
          [2.1562609672546387, 1.8176906108856201, 3.8139023780822754, 3.9100403785705566],
          [2.1190247535705566, 1.7085051536560059, 3.829298973083496, 3.9254214763641357]]


def test_sliver_barycentrics_are_moved_onto_the_triangle():
    from csdkit import ops
    from csdkit.render.mesh_renderer import barycentrics_in_triangle

    pos = torch.tensor([SLIVER], requires_grad=True)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast = ops.rasterize(pos, tri, (64, 64))
    hit = rast[0, ..., 3] > 0
    u, v = rast[0, ..., 0][hit], rast[0, ..., 1][hit]
    assert bool(((u < 0) | (v < 0) | (u + v > 1)).any()), "the rasterizer reports this sliver's pixel outside"
    fixed = barycentrics_in_triangle(rast)
    fu, fv = fixed[0, ..., 0][hit], fixed[0, ..., 1][hit]
    assert bool((fu >= 0).all() and (fv >= 0).all() and (fu + fv <= 1 + 1e-6).all()), (fu, fv)
    colours = torch.eye(3)  # one channel per vertex: a channel below 0 is a negative weight
    raw = ops.interpolate(colours, rast, tri)[0][hit]
    inside = ops.interpolate(colours, fixed, tri)[0][hit]
    assert float(raw.min()) < -0.5, "extrapolated colours without the fix"
    assert float(inside.min()) >= 0 and float(inside.max()) <= 1
    inside.sum().backward()  # differentiable w.r.t. the positions
    assert pos.grad is not None and torch.isfinite(pos.grad).all()


def test_barycentrics_inside_their_triangle_are_untouched(sphere):
    from csdkit import ops
    from csdkit.render.mesh_renderer import barycentrics_in_triangle

    cams = _front("cpu")
    v = sphere.vertices
    pos = torch.cat([v, torch.ones_like(v[:, :1])], 1) @ cams.mvp(1.0).transpose(1, 2)
    rast = ops.rasterize(pos.contiguous(), sphere.faces_int32, (RES, RES))
    out = barycentrics_in_triangle(rast)
    hit = rast[..., 3] > 0
    ok = hit & (rast[..., 0] >= 0) & (rast[..., 1] >= 0) & (1 - rast[..., 0] - rast[..., 1] >= 0)
    assert torch.equal(out[ok], rast[ok]) and torch.equal(out[~hit], rast[~hit])
