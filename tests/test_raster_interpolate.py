"""csdkit.ops.interpolate: parity with the reference, gradients (attributes, positions), derivatives."""

from __future__ import annotations

import pytest
import torch
from raster_scenes import icosphere, orbit_clip, triangle_soup

from csdkit.ops import interpolate, rasterize
from csdkit.ops.reference.interpolate import interpolate_reference, interpolate_with_positions_reference
from csdkit.ops.reference.rasterize import rasterize_reference

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shared", [True, False], ids=["shared_attr", "per_image_attr"])
def test_forward_and_backward_match_reference(device, dtype, shared):
    pos, tri = triangle_soup(20, batch=2, seed=7, dtype=dtype)
    rast = rasterize_reference(pos, tri, (18, 22))
    attr = torch.randn(1 if shared else 2, pos.shape[1], 5, dtype=dtype)
    cot = torch.randn(2, 18, 22, 5, dtype=dtype)

    a_ref, r_ref = attr.clone().requires_grad_(True), rast.clone().requires_grad_(True)
    out_ref = interpolate_reference(a_ref, r_ref, tri)
    (out_ref * cot).sum().backward()

    a, r = attr.to(device).clone().requires_grad_(True), rast.to(device).clone().requires_grad_(True)
    out = interpolate(a, r, tri.to(device))
    (out * cot.to(device)).sum().backward()

    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.cpu(), out_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(a.grad.cpu(), a_ref.grad, rtol=tol, atol=tol * 10)
    torch.testing.assert_close(r.grad.cpu()[..., :2], r_ref.grad[..., :2], rtol=tol, atol=tol * 10)
    assert (r.grad.cpu()[..., 2:] == 0).all()
    assert (out.cpu()[rast[..., 3] == 0] == 0).all()


def test_two_dimensional_attr_is_shared(device):
    pos, tri = triangle_soup(8, batch=2, seed=8)
    rast = rasterize(pos.to(device), tri.to(device), (10, 10))
    attr = torch.randn(pos.shape[1], 3, device=device)
    t = tri.to(device)
    torch.testing.assert_close(interpolate(attr, rast, t), interpolate(attr[None], rast, t))


def test_gradcheck_attr_and_barycentrics_float64(device):
    pos, tri = triangle_soup(4, batch=1, seed=9, dtype=torch.float64)
    rast = rasterize(pos, tri, (6, 6)).to(device)
    attr = torch.randn(1, pos.shape[1], 2, dtype=torch.float64, device=device, requires_grad=True)
    t = tri.to(device)
    uv = rast[..., :2].clone().requires_grad_(True)

    def f(a, uv_):
        return interpolate(a, torch.cat([uv_, rast[..., 2:]], -1), t)

    assert torch.autograd.gradcheck(f, (attr, uv), eps=1e-6, atol=1e-6)


def test_gradcheck_positions_float64(device):
    pos, tri = triangle_soup(3, batch=1, seed=10, dtype=torch.float64)
    rast = rasterize(pos, tri, (7, 7)).to(device)
    attr = torch.randn(1, pos.shape[1], 3, dtype=torch.float64, device=device)
    p = pos.to(device).clone().requires_grad_(True)
    t = tri.to(device)
    def f(q):
        return interpolate(attr, rast, t, pos_clip=q)

    assert torch.autograd.gradcheck(f, (p,), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_position_gradient_matches_reference_and_rasterize_path(device, dtype):
    verts, faces = icosphere(1, dtype=dtype)
    pos = orbit_clip(verts, [15.0, -40.0], [30.0, 150.0], distance=2.7)
    rast = rasterize_reference(pos, faces, (16, 16))
    attr = torch.randn(1, verts.shape[0], 4, dtype=dtype)
    cot = torch.randn(2, 16, 16, 4, dtype=dtype)

    p_ref = pos.clone().requires_grad_(True)
    (interpolate_with_positions_reference(attr, rast, faces, p_ref) * cot).sum().backward()

    p = pos.to(device).clone().requires_grad_(True)
    out = interpolate(attr.to(device), rast.to(device), faces.to(device), pos_clip=p)
    (out * cot.to(device)).sum().backward()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    scale = p_ref.grad.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(p.grad.cpu(), p_ref.grad, rtol=tol, atol=tol * scale)

    # The same gradient flows through rasterize's own (u, v) outputs (nvdiffrast's way).
    p2 = pos.to(device).clone().requires_grad_(True)
    out2 = interpolate(attr.to(device), rasterize(p2, faces.to(device), (16, 16)), faces.to(device))
    (out2 * cot.to(device)).sum().backward()
    torch.testing.assert_close(p2.grad.cpu(), p_ref.grad, rtol=tol, atol=tol * scale)


def test_position_gradient_matches_finite_differences():
    # Inside triangles the rendered attribute is a smooth function of the vertex positions:
    # compare the analytic gradient of a pixel-weighted sum with central differences.
    verts, faces = icosphere(1, dtype=torch.float64)
    pos = orbit_clip(verts, [20.0], [35.0], distance=2.7).double()
    attr = torch.randn(1, verts.shape[0], 3, dtype=torch.float64)
    weights = torch.randn(1, 20, 20, 3, dtype=torch.float64)
    rast = rasterize(pos, faces, (20, 20))

    def loss(p):
        return (interpolate(attr, rast, faces, pos_clip=p) * weights).sum()

    p = pos.clone().requires_grad_(True)
    loss(p).backward()
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        v = int(torch.randint(0, verts.shape[0], (1,), generator=g))
        c = int(torch.randint(0, 4, (1,), generator=g))
        h = 1e-6
        dp = torch.zeros_like(pos)
        dp[0, v, c] = h
        fd = (loss(pos + dp) - loss(pos - dp)) / (2 * h)
        torch.testing.assert_close(p.grad[0, v, c], fd, rtol=1e-5, atol=1e-7)


def test_attribute_derivatives(device):
    # One large triangle, attribute = clip-space position: dA/dX must match finite differences of
    # the interpolated attribute between neighbouring pixels, and the reference.
    verts, faces = icosphere(1)
    pos = orbit_clip(verts, [10.0], [20.0], distance=2.5)
    rast = rasterize(pos.to(device), faces.to(device), (24, 24))
    attr = torch.randn(1, verts.shape[0], 2, device=device)
    out, da = interpolate(attr, rast, faces.to(device), pos_clip=pos.to(device), return_da=True)
    assert da.shape == (1, 24, 24, 4)
    from csdkit.ops.reference.interpolate import (
        barycentric_derivatives_reference,
        interpolate_derivatives_reference,
    )

    rast_c = rast.cpu()
    rast_db = barycentric_derivatives_reference(pos, faces, rast_c)
    want = interpolate_derivatives_reference(attr.cpu(), rast_c, faces, rast_db)
    torch.testing.assert_close(da.cpu(), want, rtol=1e-4, atol=1e-5)
    # Central differences along X where the pixel and both neighbours share the triangle.
    ids = rast_c[0, ..., 3]
    same = (ids[:, 1:-1] > 0) & (ids[:, :-2] == ids[:, 1:-1]) & (ids[:, 2:] == ids[:, 1:-1])
    fd = (out.cpu()[0, :, 2:, 0] - out.cpu()[0, :, :-2, 0]) / 2
    assert same.sum() > 30
    torch.testing.assert_close(da.cpu()[0, :, 1:-1, 0][same], fd[same], rtol=0.05, atol=2e-3)


def test_bad_inputs_raise_clear_errors():
    pos, tri = triangle_soup(4, batch=2, seed=11)
    rast = rasterize(pos, tri, (8, 8))
    attr = torch.randn(2, pos.shape[1], 3)
    with pytest.raises(TypeError, match=r"interpolate\(\): attr must be float32"):
        interpolate(attr.double(), rast, tri)
    with pytest.raises(ValueError, match=r"attr must be \[B, V, C\] with B = 2 .* got \[3, 12, 3\]"):
        interpolate(torch.randn(3, pos.shape[1], 3), rast, tri)
    with pytest.raises(ValueError, match=r"rast must be float32 or float64 \[\*, \*, \*, 4\]"):
        interpolate(attr, rast[..., :3], tri)
    with pytest.raises(ValueError, match=r"tri indices must be in \[0, 9\] .* got indices in \[0, 11\]"):
        interpolate(attr[:, :10], rast, tri)
    with pytest.raises(ValueError, match=r"return_da=True needs pos_clip"):
        interpolate(attr, rast, tri, return_da=True)
    with pytest.raises(ValueError, match=r"pos_clip must be \[B, V, 4\] with B = 2 or 1 and V = 12"):
        interpolate(attr, rast, tri, pos_clip=pos[:, :11])
