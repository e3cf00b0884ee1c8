"""csdkit.ops.texture: conventions, mipmaps, parity with the reference, gradients, errors."""

from __future__ import annotations

import pytest
import torch

from csdkit.ops import build_mipmaps, texture
from csdkit.ops.reference.texture import BOUNDARIES, FILTERS, texture_reference, uv_derivatives_fd

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]


def _uv_da(b, h, w, scale, dtype=torch.float32, rotate=True):
    """Isotropic footprints of ``scale`` (in uv units per pixel), randomly rotated or axis-aligned."""
    ang = torch.rand(b, h, w, dtype=dtype) * 6.28 if rotate else torch.zeros(b, h, w, dtype=dtype)
    s = torch.as_tensor(scale, dtype=dtype).expand(b, h, w)
    return torch.stack([s * torch.cos(ang), -s * torch.sin(ang), s * torch.sin(ang), s * torch.cos(ang)], -1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("filter", FILTERS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_forward_and_backward_match_reference(device, dtype, filter, boundary):
    tex = torch.randn(2, 16, 8, 3, dtype=dtype)
    uv = torch.rand(2, 9, 11, 2, dtype=dtype) * 2.4 - 0.7  # reaches outside [0, 1]
    # Mip levels 0.3 .. 2.7 (away from integers, where linear-mipmap-nearest jumps).
    level = torch.rand(2, 9, 11, dtype=dtype) * 2.4 + 0.3
    level = torch.where((level - level.round()).abs() < 0.05, level + 0.1, level)
    uv_da = _uv_da(2, 9, 11, 2.0 ** level / 16, dtype)
    cot = torch.randn(2, 9, 11, 3, dtype=dtype)

    t_ref, uv_ref = tex.clone().requires_grad_(True), uv.clone().requires_grad_(True)
    out_ref = texture_reference(t_ref, uv_ref, filter, boundary, uv_da=uv_da)
    (out_ref * cot).sum().backward()

    t, u = tex.to(device).requires_grad_(True), uv.to(device).requires_grad_(True)
    out = texture(t, u, filter=filter, boundary=boundary, uv_da=uv_da.to(device))
    (out * cot.to(device)).sum().backward()

    tol = 2e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out.cpu(), out_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(t.grad.cpu(), t_ref.grad, rtol=tol, atol=tol)
    if filter == "nearest":
        assert u.grad is None or (u.grad == 0).all()
    else:
        torch.testing.assert_close(u.grad.cpu(), uv_ref.grad, rtol=1e-4, atol=tol * 100)
        assert u.grad.abs().sum() > 0


def test_texel_centres_and_v_axis(device):
    # uv at texel centres returns the texel exactly; row 0 of the texture is v = 0.
    h, w = 4, 6
    tex = torch.arange(h * w, dtype=torch.float32).view(1, h, w, 1).to(device)
    j, i = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy")
    uv = torch.stack([(j + 0.5) / w, (i + 0.5) / h], -1)[None].float().to(device)
    for filter in ("nearest", "linear"):
        out = texture(tex, uv, filter=filter)
        torch.testing.assert_close(out, tex)
    # Half-way between texel (0, 0) and (0, 1) along u; the outer corner (0, 0) with clamp reads texel 0.
    mid = torch.tensor([[[[1.0 / w, 0.5 / h], [0.0, 0.0]]]], device=device)
    out = texture(tex, mid, filter="linear", boundary="clamp")[0, 0, :, 0].cpu()
    torch.testing.assert_close(out, torch.tensor([0.5, 0.0]))
    # Wrap: the corner averages the four corner texels.
    out = texture(tex, mid[:, :, 1:], filter="linear", boundary="wrap")[0, 0, 0, 0].cpu()
    corners = tex[0, [0, 0, -1, -1], [0, -1, 0, -1], 0].cpu()
    torch.testing.assert_close(out, corners.mean())
    # Zero boundary: half of the bilinear footprint lies outside.
    out = texture(tex, torch.tensor([[[[0.5 / w, 0.0]]]], device=device), boundary="zero")[0, 0, 0, 0].cpu()
    torch.testing.assert_close(out, tex[0, 0, 0, 0].cpu() * 0.5)


def test_mip_pyramid_is_a_box_filter():
    tex = torch.randn(1, 8, 4, 2)
    levels = build_mipmaps(tex)
    assert [tuple(lv.shape[1:3]) for lv in levels] == [(8, 4), (4, 2), (2, 1), (1, 1)]
    torch.testing.assert_close(levels[1][0, 1, 0], tex[0, 2:4, 0:2].mean((0, 1)))
    torch.testing.assert_close(levels[3][0, 0, 0], tex[0].mean((0, 1)))
    # Odd sizes stop the pyramid; max_mip_level caps it.
    assert len(build_mipmaps(torch.randn(1, 12, 6, 1))) == 2  # 12x6 -> 6x3, then 3 is odd
    assert len(build_mipmaps(tex, max_mip_level=1)) == 2


def test_mip_level_selection(device):
    # A footprint of 2**k texels selects level k exactly: the result equals bilinear sampling of
    # that level of the pyramid.
    tex = torch.randn(1, 32, 32, 3)
    uv = torch.rand(1, 6, 7, 2)
    levels = build_mipmaps(tex)
    for k in range(0, 5):
        uv_da = _uv_da(1, 6, 7, 2.0**k / 32, rotate=False)  # exact powers of two
        for filter in ("linear-mipmap-linear", "linear-mipmap-nearest"):
            out = texture(tex.to(device), uv.to(device), filter=filter, uv_da=uv_da.to(device)).cpu()
            torch.testing.assert_close(out, texture(levels[k], uv, filter="linear"), rtol=1e-4, atol=1e-5)
    # Half-way between levels 1 and 2 blends them equally; a bias shifts the level.
    uv_da = _uv_da(1, 6, 7, 2.0**1.5 / 32)
    out = texture(tex.to(device), uv.to(device), filter="linear-mipmap-linear", uv_da=uv_da.to(device)).cpu()
    blend = 0.5 * (texture(levels[1], uv) + texture(levels[2], uv))
    torch.testing.assert_close(out, blend, rtol=1e-4, atol=1e-5)
    bias = torch.full((1, 6, 7), 3.0, device=device)
    out = texture(tex.to(device), uv.to(device), filter="linear-mipmap-linear", mip_level_bias=bias).cpu()
    torch.testing.assert_close(out, texture(levels[3], uv), rtol=1e-4, atol=1e-5)


def test_finite_difference_uv_derivatives_by_default(device):
    tex = torch.randn(1, 16, 16, 2)
    grid = torch.linspace(0, 1, 8)
    uv = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1)[None]
    uv = (uv * torch.linspace(0.5, 2.0, 8)[:, None, None] + 0.05 * torch.rand(1, 8, 8, 2)).contiguous()
    got = texture(tex.to(device), uv.to(device), filter="linear-mipmap-linear").cpu()
    want = texture(tex.to(device), uv.to(device), filter="linear-mipmap-linear",
                   uv_da=uv_derivatives_fd(uv).to(device)).cpu()
    torch.testing.assert_close(got, want)
    # Uneven steps of 0.5/7 .. 2/7 uv per pixel: levels from about 0.2 to 2.2.
    want = texture_reference(tex, uv, "linear-mipmap-linear", "wrap", uv_derivatives_fd(uv))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("filter", ["linear", "linear-mipmap-linear"])
def test_gradcheck_float64(device, filter):
    tex = torch.randn(1, 8, 4, 2, dtype=torch.float64, device=device, requires_grad=True)
    uv = (torch.rand(1, 3, 4, 2, dtype=torch.float64) * 1.5 - 0.2).to(device).requires_grad_(True)
    uv_da = _uv_da(1, 3, 4, 2.0 ** 1.3 / 8, torch.float64).to(device)

    def f(t, u):
        return texture(t, u, filter=filter, boundary="wrap", uv_da=uv_da)

    assert torch.autograd.gradcheck(f, (tex, uv), eps=1e-6, atol=1e-5)


def test_per_image_textures(device):
    tex = torch.randn(3, 4, 4, 2)
    uv = torch.rand(3, 5, 5, 2)
    out = texture(tex.to(device), uv.to(device)).cpu()
    for b in range(3):
        torch.testing.assert_close(out[b:b + 1], texture(tex[b], uv[b:b + 1]))


def test_bad_inputs_raise_clear_errors():
    tex, uv = torch.randn(1, 4, 4, 3), torch.rand(2, 5, 5, 2)
    with pytest.raises(ValueError, match=r"texture\(\): filter must be one of .*got 'cubic'"):
        texture(tex, uv, filter="cubic")
    with pytest.raises(ValueError, match=r"texture\(\): boundary must be one of .*got 'mirror'"):
        texture(tex, uv, boundary="mirror")
    with pytest.raises(TypeError, match=r"texture\(\): tex must be float32 .*got float64"):
        texture(tex.double(), uv)
    with pytest.raises(ValueError, match=r"uv must be .*\[\*, \*, \*, 2\], got float32 \[2, 5, 5, 3\]"):
        texture(tex, torch.rand(2, 5, 5, 3))
    with pytest.raises(ValueError, match=r"tex must be \[B, Ht, Wt, C\] with B = 2 .* got \[3, 4, 4, 3\]"):
        texture(torch.randn(3, 4, 4, 3), uv)
    with pytest.raises(ValueError, match=r"uv_da must be float32 \[2, 5, 5, 4\]"):
        texture(tex, uv, filter="linear-mipmap-linear", uv_da=torch.zeros(2, 5, 5, 2))
    with pytest.raises(ValueError, match=r"max_mip_level must be in \[0, 15\], got -1"):
        texture(tex, uv, filter="linear-mipmap-linear", max_mip_level=-1)
