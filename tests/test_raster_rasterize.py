"""csdkit.ops.rasterize: parity with the reference, watertightness, conventions, clipping, errors."""

from __future__ import annotations

import pytest
import torch
from raster_scenes import cast_rays_nearest, icosphere, orbit_clip, triangle_soup

import csdkit
from csdkit.ops import rasterize
from csdkit.ops.reference.rasterize import coverage_masks, rasterize_reference
from csdkit.render.cameras import Cameras

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference_on_overlapping_and_clipped_triangles(device, dtype):
    pos, tri = triangle_soup(40, batch=2, seed=1, dtype=dtype, behind_camera=True)
    assert (pos[..., 3] <= 0).any(), "the scene must exercise the homogeneous clipping path"
    want = rasterize_reference(pos, tri, (20, 28))
    got = rasterize(pos.to(device), tri.to(device), (20, 28)).cpu()
    assert got.shape == (2, 20, 28, 4) and got.dtype == dtype
    assert torch.equal(got[..., 3], want[..., 3]), "coverage and depth test must match the reference exactly"
    assert (got[..., 3] > 0).float().mean() > 0.3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_position_gradient_matches_reference(device, dtype):
    pos, tri = triangle_soup(12, batch=2, seed=2, dtype=dtype)
    cot = torch.randn(2, 16, 16, 4, dtype=dtype)
    p_ref = pos.clone().requires_grad_(True)
    (rasterize_reference(p_ref, tri, (16, 16)) * cot).sum().backward()
    p = pos.to(device).clone().requires_grad_(True)
    (rasterize(p, tri.to(device), (16, 16)) * cot.to(device)).sum().backward()
    assert p_ref.grad.abs().sum() > 0
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(p.grad.cpu(), p_ref.grad, rtol=tol, atol=tol * p_ref.grad.abs().max().item())


def test_gradcheck_float64(device):
    pos, tri = triangle_soup(3, batch=1, seed=3, dtype=torch.float64)
    p = pos.to(device).clone().requires_grad_(True)
    t = tri.to(device)
    assert torch.autograd.gradcheck(lambda q: rasterize(q, t, (8, 8))[..., :3], (p,), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("resolution", [(40, 40), (29, 37)], ids=["40x40", "29x37"])
def test_closed_mesh_is_watertight_from_many_directions(device, resolution):
    verts, faces = icosphere(2)
    el = torch.tensor([0.0, 35.0, -60.0, 89.0, 12.5, -30.0])
    az = torch.tensor([0.0, 45.0, 100.0, 7.0, 211.0, -73.0])
    pos = orbit_clip(verts, el, az, distance=2.6, aspect=resolution[1] / resolution[0])
    rast = rasterize(pos.to(device), faces.to(device), resolution).cpu()
    for b in range(pos.shape[0]):
        masks = coverage_masks(pos[b], faces, resolution)  # [T, H, W], no depth test
        count = masks.sum(0)
        # A ray through a closed convex mesh crosses it exactly twice: no cracks (count 1), no
        # double hits at shared edges or vertices (count 3+).
        assert set(count.unique().tolist()) <= {0, 2}, f"view {b}: coverage counts {count.unique().tolist()}"
        hit = rast[b, ..., 3] > 0
        assert torch.equal(hit, count > 0), f"view {b}: silhouette differs from the union of triangle masks"
        ids = rast[b, ..., 3].long() - 1
        # The winner covers its pixel and is the front-facing one of the two covering triangles.
        assert masks[ids[hit], hit.nonzero()[:, 0], hit.nonzero()[:, 1]].all()
        v = pos[b, faces.long()[ids[hit]]]
        ndc = v[..., :2] / v[..., 3:]
        e1, e2 = ndc[:, 1] - ndc[:, 0], ndc[:, 2] - ndc[:, 0]
        ccw = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        assert (ccw > 0).all(), "the visible triangle must be the front face (counter-clockwise in NDC)"


def test_matches_brute_force_ray_casting(device):
    verts, faces = icosphere(2)
    cams = Cameras.from_spherical([20.0, -35.0], [30.0, 200.0], 2.8, fov_y=45.0)
    h, w = 32, 40
    pos = cams.project(verts, aspect=w / h)
    rast = rasterize(pos.to(device), faces.to(device), (h, w)).cpu().flip(1)  # rows top-down like rays()
    origins, dirs = cams.rays(h, w)
    for b in range(2):
        idx, dist = cast_rays_nearest(verts, faces, origins[b], dirs[b])
        got = rast[b, ..., 3].long().reshape(-1) - 1
        agree = got == idx
        assert agree.float().mean() > 0.98
        # Disagreements only where the pixel centre lies within snapping distance of an edge.
        bary = torch.stack([rast[b, ..., 0], rast[b, ..., 1], 1 - rast[b, ..., 0] - rast[b, ..., 1]], -1)
        near_edge = bary.reshape(-1, 3).min(-1).values < 0.05
        assert (agree | near_edge | (idx < 0) | (got < 0)).all()
        # Depth channel: z/w of the ray's hit point.
        both = agree & (idx >= 0)
        hit_points = origins[b].reshape(-1, 3)[both] + dist[both, None].float() * dirs[b].reshape(-1, 3)[both]
        clip = cams[b].project(hit_points)[0]
        got_depth = rast[b, ..., 2].reshape(-1)[both]
        torch.testing.assert_close(got_depth, clip[:, 2] / clip[:, 3], atol=2e-4, rtol=0)


def test_depth_order_and_ties(device):
    # Two full-screen-ish triangles at z/w = 0.2 (index 0) and -0.3 (index 1): the nearer wins in
    # either order; at equal depth the lower index wins.
    def tri_at(z):
        return torch.tensor([[-0.9, -0.9, z, 1.0], [0.9, -0.9, z, 1.0], [0.0, 0.9, z, 1.0]])

    faces = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32, device=device)
    for first, second, winner in [(0.2, -0.3, 2), (-0.3, 0.2, 1), (0.5, 0.5, 1)]:
        pos = torch.cat([tri_at(first), tri_at(second)]).to(device)
        rast = rasterize(pos, faces, (16, 16)).cpu()
        ids = rast[0, ..., 3]
        assert (ids > 0).sum() > 50
        assert (ids[ids > 0] == winner).all(), (first, second)
        depth = rast[0, ..., 2][ids > 0]
        torch.testing.assert_close(depth, torch.full_like(depth, min(first, second)))


def test_pixel_and_barycentric_conventions(device):
    # Row 0 is NDC y = -1; u weights vertex 0, v vertex 1 (nvdiffrast's convention).
    pos = torch.tensor([[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [-1.0, 0.0, 0.0, 1.0]], device=device)
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32, device=device)
    rast = rasterize(pos, faces, (8, 8)).cpu()[0]
    hit = rast[..., 3] > 0
    # At row 0 (y = -7/8) the hypotenuse is at x = 0.75: columns 0..6 are inside, column 7 not;
    # rows 4..7 (y > 0) are above the triangle.
    assert hit[0, :7].all() and not hit[0, 7] and not hit[4:].any(), "row 0 must be the bottom of NDC space"
    # Pixel (row 0, col 0) is at NDC (-7/8, -7/8): barycentrics (1 - x' - y', x', y') with
    # x' = (x + 1) / 2 = 1/16, y' = (y + 1) = 1/8.
    torch.testing.assert_close(rast[0, 0, :2], torch.tensor([1 - 1 / 16 - 1 / 8, 1 / 16]))
    assert (rast[~hit] == 0).all(), "background pixels must be all zero"


def test_perspective_correct_barycentrics(device):
    # A triangle slanted in depth: interpolating the camera-space depth with (u, v) must give the
    # true depth along each pixel ray (it would not with screen-space barycentrics).
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.5, -1.0, -3.0], [0.0, 1.2, -1.0]])
    faces = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    cams = Cameras.look_at([[0.0, 0.0, 2.5]], [[0.0, 0.0, 0.0]], fov_y=60.0)
    pos = cams.project(verts)
    rast = rasterize(pos.to(device), faces.to(device), (24, 24)).cpu()[0]
    hit = rast[..., 3] > 0
    u, v = rast[..., 0][hit], rast[..., 1][hit]
    w_interp = u * pos[0, 0, 3] + v * pos[0, 1, 3] + (1 - u - v) * pos[0, 2, 3]  # clip w = view depth
    # Exact view depth from the pixel's ray and the triangle's plane.
    origins, dirs = cams.rays(24, 24)
    idx, dist = cast_rays_nearest(verts, faces, origins[0].flip(0), dirs[0].flip(0))
    fwd = -cams.c2w[0, :3, 2]
    depth = (dist.float() * (dirs[0].flip(0).reshape(-1, 3) @ fwd))
    torch.testing.assert_close(w_interp, depth.reshape(24, 24)[hit], rtol=1e-4, atol=1e-4)


def test_near_far_and_camera_plane_clipping(device):
    # A ground plane reaching behind the camera (w < 0) and beyond the far plane.
    verts = torch.tensor([[-40.0, -0.5, -150.0], [40.0, -0.5, -150.0], [40.0, -0.5, 40.0],
                          [-40.0, -0.5, 40.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    cams = Cameras.look_at([[0.0, 0.0, 3.0]], [[0.0, 0.0, 0.0]], near=0.1, far=60.0)
    pos = cams.project(verts)
    assert (pos[0, :, 3] < 0).any()
    rast = rasterize(pos.to(device), faces.to(device), (24, 24)).cpu()
    torch.testing.assert_close(rast, rasterize_reference(pos, faces, (24, 24)), rtol=1e-5, atol=1e-5)
    hit = rast[0, ..., 3] > 0
    depth = rast[0, ..., 2][hit]
    assert ((depth >= -1) & (depth <= 1)).all()
    # Ray casting: pixels whose ray hits the plane closer than `far` are covered, others not.
    origins, dirs = cams.rays(24, 24)
    idx, dist = cast_rays_nearest(verts, faces, origins[0].flip(0), dirs[0].flip(0))
    view_depth = dist * (dirs[0].flip(0).reshape(-1, 3).double() @ torch.tensor([0.0, 0.0, -1.0]).double())
    expect = (idx >= 0) & (view_depth < 60.0)
    agree = (hit.reshape(-1) == expect).float().mean()
    assert agree > 0.97 and expect.any() and (~expect).any()


def test_triangle_behind_camera_is_invisible(device):
    pos = torch.tensor([[[-0.5, -0.5, 0.5, -1.0], [0.5, -0.5, 0.5, -1.0], [0.0, 0.5, 0.5, -1.0]]],
                       device=device)
    rast = rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32, device=device), (8, 8))
    assert (rast == 0).all()


def test_single_image_positions_and_empty_mesh(device):
    pos, tri = triangle_soup(6, batch=1, seed=4)
    a = rasterize(pos[0].to(device), tri.to(device), 12)
    b = rasterize(pos.to(device), tri.to(device), (12, 12))
    assert a.shape == (1, 12, 12, 4)
    assert torch.equal(a, b)
    empty = rasterize(pos.to(device), torch.zeros(0, 3, dtype=torch.int32, device=device), (5, 7))
    assert empty.shape == (1, 5, 7, 4) and (empty == 0).all()


def test_result_does_not_depend_on_thread_count():
    pos, tri = triangle_soup(60, batch=3, seed=5, behind_camera=True)
    csdkit.set_num_threads(1)
    try:
        one = rasterize(pos, tri, (33, 31))
    finally:
        csdkit.set_num_threads(2)
    two = rasterize(pos, tri, (33, 31))
    assert torch.equal(one, two)


def test_bad_inputs_raise_clear_errors():
    pos, tri = triangle_soup(4, batch=1, seed=6)
    with pytest.raises(TypeError, match=r"rasterize\(\): pos_clip must be float32 or float64"):
        rasterize(pos.long(), tri, 8)
    with pytest.raises(ValueError, match=r"pos_clip must be .*\[\*, \*, 4\], got float32 \[1, 12, 3\]"):
        rasterize(pos[..., :3], tri, 8)
    with pytest.raises(TypeError, match=r"rasterize\(\): tri must be int32 \[\*, 3\], got int64"):
        rasterize(pos, tri.long(), 8)
    with pytest.raises(ValueError, match=r"tri must be int32 \[\*, 3\], got int32 \[4, 4\]"):
        rasterize(pos, torch.zeros(4, 4, dtype=torch.int32), 8)
    bad = tri.clone()
    bad[2, 1] = 12
    with pytest.raises(ValueError, match=r"tri indices must be in \[0, 11\] .* got indices in \[0, 12\]"):
        rasterize(pos, bad, 8)
    bad[2, 1] = -3
    with pytest.raises(ValueError, match=r"got indices in \[-3, 11\]"):
        rasterize(pos, bad, 8)
    with pytest.raises(ValueError, match=r"tri must be on cpu"):
        rasterize(pos, tri.to("meta"), 8)
    with pytest.raises(ValueError, match=r"resolution\[0\] \(height\) must be in \[1, 16384\], got 0"):
        rasterize(pos, tri, (0, 8))
    with pytest.raises(TypeError, match=r"resolution must be an int or a pair"):
        rasterize(pos, tri, "512")
    with pytest.raises(TypeError, match=r"pos_clip must be a torch.Tensor"):
        rasterize(pos.numpy(), tri, 8)
