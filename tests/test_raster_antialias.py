"""csdkit.ops.antialias: exact coverage of straight edges, parity with the reference, gradients, topology."""

from __future__ import annotations

import pytest
import torch
from raster_scenes import icosphere, orbit_clip, triangle_soup

from csdkit.ops import antialias, antialias_topology, rasterize
from csdkit.ops.reference.antialias import antialias_reference

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


def _half_plane_square(edge: float, axis: int, size: int = 8, dtype=torch.float64):
    """A square covering screen coordinates < ``edge`` along ``axis`` (0: x, 1: y) of a size x size image."""
    e = edge / size * 2 - 1
    corners = [[-1.5, -1.5], [e, -1.5], [e, 1.5], [-1.5, 1.5]]
    if axis == 1:
        corners = [[c[1], c[0]] for c in corners][::-1]  # mirrored: keep the winding
    pos = torch.tensor([[x, y, 0.0, 1.0] for x, y in corners], dtype=dtype)
    return pos, torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)


@pytest.mark.parametrize("edge", [4.3, 3.8, 2.5, 6.95])
@pytest.mark.parametrize("axis", [0, 1], ids=["vertical_edge", "horizontal_edge"])
def test_straight_edge_gets_its_covered_fraction(device, edge, axis):
    size = 8
    pos, tri = _half_plane_square(edge, axis, size)
    pos, tri = pos.to(device), tri.to(device)
    rast = rasterize(pos, tri, (size, size))
    color = (rast[..., 3:4] > 0).double()
    p = pos.clone().requires_grad_(True)
    out = antialias(color, rast, p, tri)
    # Exact coverage of each pixel box [i, i + 1] along the axis by {X < edge}.
    idx = torch.arange(size, dtype=torch.float64, device=device)
    want_1d = (edge - idx).clamp(0, 1)
    want = want_1d.view(1, 1, size, 1).expand(1, size, size, 1) if axis == 0 else \
        want_1d.view(1, size, 1, 1).expand(1, size, size, 1)
    torch.testing.assert_close(out, want, atol=1e-9, rtol=0)
    # Shifting the edge by dX changes the sum by size * dX; dX / dx = size / 2 (w = 1).
    out.sum().backward()
    moving = (pos[:, axis] - (edge / size * 2 - 1)).abs() < 1e-12
    assert float(p.grad[moving, axis].sum()) == pytest.approx(size * size / 2, rel=1e-9)
    assert float(p.grad[~moving].abs().sum()) == 0.0


def test_straight_edge_between_two_surfaces_blends_toward_the_front_one(device):
    # A near square over the left part, a far square behind the whole image: column 4 mixes the two.
    near, tri = _half_plane_square(4.25, 0)
    near[:, 2] = -0.5
    far = torch.tensor([[-2, -2, 0.5, 1], [2, -2, 0.5, 1], [2, 2, 0.5, 1], [-2, 2, 0.5, 1]], dtype=torch.float64)
    pos = torch.cat([near, far]).to(device)
    tri = torch.cat([tri, tri + 4]).to(device)
    rast = rasterize(pos, tri, (8, 8))
    color = torch.where(rast[..., 3:4] <= 2, 1.0, 0.25).double()
    out = antialias(color, rast, pos, tri)
    torch.testing.assert_close(out[0, :, 4, 0], torch.full((8,), 0.25 + 0.25 * 0.75, dtype=torch.float64,
                                                           device=device))
    torch.testing.assert_close(out[0, :, [0, 1, 2, 3, 5, 6, 7], 0], color[0, :, [0, 1, 2, 3, 5, 6, 7], 0])


def _four_walls(lo: float = 4.45, hi: float = 4.55, size: int = 9, dtype=torch.float64):
    """Four separate triangles covering X < lo, X > hi, Y < lo and Y > hi (screen units) of a size x size
    image: the pixel (4, 4) in the hole has four covered neighbours, each owning the edge next to it."""
    a, b = lo / size * 2 - 1, hi / size * 2 - 1
    walls = [[(a, -3), (a, 3), (-3, 0)], [(b, 3), (b, -3), (3, 0)],
             [(3, a), (-3, a), (0, -3)], [(-3, b), (3, b), (0, 3)]]
    pos = torch.tensor([[x, y, 0.0, 1.0] for wall in walls for x, y in wall], dtype=dtype)
    return pos, torch.arange(12, dtype=torch.int32).reshape(4, 3)


def _two_colours(rast, inside: float, outside: float) -> torch.Tensor:
    return torch.where(rast[..., 3:4] > 0, torch.tensor(inside, dtype=torch.float64, device=rast.device),
                       torch.tensor(outside, dtype=torch.float64, device=rast.device))


def test_blends_landing_on_one_pixel_stay_a_convex_combination(device):
    # Each of the four edges around the hole pixel covers 0.45 of it: 1.8 in total, so the blends are
    # divided by 1.8 (the pixel gets the walls' colour 0.9) instead of overshooting to 0.1 + 1.8 * 0.8.
    pos, tri = (t.to(device) for t in _four_walls())
    rast = rasterize(pos, tri, (9, 9))
    assert int(rast[0, 4, 4, 3]) == 0 and bool((rast[0, 3:6, 3:6, 3].flatten()[[1, 3, 5, 7]] > 0).all())
    color = _two_colours(rast, 0.9, 0.1)
    p = pos.clone().requires_grad_(True)
    out = antialias(color, rast, p, tri)
    assert float(out[0, 4, 4, 0]) == pytest.approx(0.9, abs=1e-12)
    assert float(out.max()) <= 0.9 + 1e-12 and float(out.min()) >= 0.1 - 1e-12
    ref = antialias_reference(color, rast, pos[None], tri, antialias_topology(tri))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    # A larger hole: 4 x 0.2 = 0.8 < 1, plain blends (0.1 + 0.8 * 0.8).
    pos2, tri2 = (t.to(device) for t in _four_walls(4.2, 4.8))
    rast2 = rasterize(pos2, tri2, (9, 9))
    out2 = antialias(_two_colours(rast2, 0.9, 0.1), rast2, pos2, tri2)
    assert float(out2[0, 4, 4, 0]) == pytest.approx(0.1 + 0.8 * 0.8, abs=1e-12)


def test_gradients_of_normalized_blends_match_the_reference_and_gradcheck(device):
    pos, tri = (t.to(device) for t in _four_walls(4.4, 4.65))
    rast = rasterize(pos, tri, (9, 9))
    color = torch.rand(1, 9, 9, 2, dtype=torch.float64, device=device)
    cot = torch.randn(1, 9, 9, 2, dtype=torch.float64, device=device)
    topo = antialias_topology(tri)
    grads = []
    for fn in (lambda c, q: antialias(c, rast, q, tri, topology=topo),
               lambda c, q: antialias_reference(c, rast, q[None], tri, topo)):
        c, q = color.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        (fn(c, q) * cot).sum().backward()
        grads.append((c.grad, q.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-12, rtol=0)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-10, rtol=0)
    assert float(grads[0][1][4:].abs().sum()) > 0  # the hole's corners move the blend
    c, q = color.clone().requires_grad_(True), pos.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, q: antialias(c, rast, q, tri, topology=topo), (c, q), eps=1e-6,
                                    atol=1e-6)


def test_only_silhouette_pixels_change_on_a_closed_mesh(device):
    verts, faces = icosphere(2, dtype=torch.float64)
    pos = orbit_clip(verts, [10.0, -30.0], [20.0, 140.0]).to(device)
    tri = faces.to(device)
    rast = rasterize(pos, tri, (48, 48))
    face_color = torch.rand(faces.shape[0], 3, dtype=torch.float64, device=device)
    ids = rast[..., 3].long()
    color = torch.where(ids[..., None] > 0, face_color[(ids - 1).clamp(min=0)], torch.zeros(3, device=device,
                                                                                             dtype=torch.float64))
    out = antialias(color, rast, pos, tri)
    changed = (out - color).abs().amax(-1) > 0
    fg = ids > 0
    pad = torch.nn.functional.pad(fg[:, None].double(), (1, 1, 1, 1), value=0.0)[:, 0] > 0
    near_bg = ~(pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:])
    near_fg = pad[:, :-2, 1:-1] | pad[:, 2:, 1:-1] | pad[:, 1:-1, :-2] | pad[:, 1:-1, 2:]
    on_outline = (fg & near_bg) | (~fg & near_fg)
    assert int(changed.sum()) > 40  # the outline is blended...
    assert not bool((changed & ~on_outline).any())  # ...and nothing inside (shared edges are no silhouettes)
    assert bool(((out >= -1e-12) & (out <= 1 + 1e-12)).all())  # convex blends of the inputs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scene", ["soup", "sphere"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared_pos", "per_image_pos"])
def test_forward_and_backward_match_reference(device, dtype, scene, shared):
    if scene == "soup":
        pos, tri = triangle_soup(24, batch=2, seed=3, dtype=dtype)
    else:
        verts, tri = icosphere(1, dtype=dtype)
        pos = orbit_clip(verts, [0.0, 35.0], [10.0, 200.0]).to(dtype)
    if shared:
        pos = pos[:1]
    rast = rasterize(pos.expand(2, -1, -1).contiguous(), tri, (20, 26))
    color = torch.rand(2, 20, 26, 3, dtype=dtype)
    cot = torch.randn(2, 20, 26, 3, dtype=dtype)
    topo = antialias_topology(tri)

    c_ref, p_ref = color.clone().requires_grad_(True), pos.clone().requires_grad_(True)
    out_ref = antialias_reference(c_ref, rast, p_ref, tri, topo)
    (out_ref * cot).sum().backward()

    c, p = color.to(device).requires_grad_(True), pos.to(device).requires_grad_(True)
    out = antialias(c, rast.to(device), p, tri.to(device), topology=topo.to(device))
    (out * cot.to(device)).sum().backward()

    assert int(((out_ref - color).abs() > 0).any(-1).sum()) > 20  # the scene has silhouettes
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.detach().cpu(), out_ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(c.grad.cpu(), c_ref.grad, rtol=tol, atol=tol)
    scale = float(p_ref.grad.abs().max())
    assert scale > 0
    torch.testing.assert_close(p.grad.cpu(), p_ref.grad, rtol=tol * 10, atol=tol * 10 * scale)


def test_gradcheck_float64(device):
    verts, tri = icosphere(1, dtype=torch.float64)
    pos = orbit_clip(verts, [20.0], [30.0]).to(device)
    tri = tri.to(device)
    rast = rasterize(pos, tri, (10, 12))
    color = torch.rand(1, 10, 12, 2, dtype=torch.float64, device=device, requires_grad=True)
    p = pos.clone().requires_grad_(True)
    topo = antialias_topology(tri)
    assert torch.autograd.gradcheck(lambda c, q: antialias(c, rast, q, tri, topology=topo), (color, p),
                                    eps=1e-6, atol=1e-6)


def test_topology_of_open_closed_and_non_manifold_meshes():
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    assert antialias_topology(quad).tolist() == [[-1, -1, 1], [0, -1, -1]]
    _, faces = icosphere(1)
    topo = antialias_topology(faces).long()
    assert bool((topo >= 0).all())
    for t in range(faces.shape[0]):  # symmetric: my neighbour across an edge has me across the same edge
        for k in range(3):
            n = int(topo[t, k])
            assert t in topo[n].tolist()
            edge = {int(faces[t, k]), int(faces[t, (k + 1) % 3])}
            assert edge <= set(faces[n].tolist())
    fin = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]], dtype=torch.int32)  # edge (0, 1) has three faces
    assert antialias_topology(fin)[:, 0].tolist() == [-1, -1, -1]
    assert antialias_topology(torch.zeros(0, 3, dtype=torch.int32)).shape == (0, 3)


def test_bad_inputs_raise_clear_errors():
    pos, tri = _half_plane_square(4.3, 0)
    rast = rasterize(pos, tri, (8, 8))
    color = torch.rand(1, 8, 8, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="color must be float32 or float64"):
        antialias(color.long(), rast, pos, tri)
    with pytest.raises(ValueError, match=r"rast must be .*\[1, 8, 8, 4\]"):
        antialias(color, rast[:, :4], pos, tri)
    with pytest.raises(TypeError, match="pos_clip must be float64"):
        antialias(color, rast, pos.float(), tri)
    with pytest.raises(ValueError, match="pos_clip must be \\[B, V, 4\\] with B = 1"):
        antialias(color, rast, pos[None].expand(3, -1, -1), tri)
    with pytest.raises(ValueError, match="tri indices must be in"):
        antialias(color, rast, pos, tri + 4)
    with pytest.raises(ValueError, match="topology entries must be -1 or triangle indices"):
        antialias(color, rast, pos, tri, topology=torch.full((2, 3), 5, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"topology must be int32 \[2, 3\]"):
        antialias(color, rast, pos, tri, topology=torch.zeros(3, 3, dtype=torch.int32))
