"""Ray/box intersection and ray marching: hand-checked cases, exact parity with the PyTorch
reference (dense, sparse, multi-level, cone angle, jitter), determinism, edge cases, validation."""

from __future__ import annotations

import math

import csdkit.ops as ops
import pytest
import torch
from csdkit.ops import reference as ref


def _rays(n: int, device, dtype=torch.float32, seed: int = 0):
    """Rays from a sphere of radius 3 towards the unit box, some of them missing it."""
    g = torch.Generator().manual_seed(seed)
    origin = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1) * 3.0
    target = 0.9 * (2 * torch.rand(n, 3, generator=g, dtype=torch.float64) - 1) * 1.3
    d = torch.nn.functional.normalize(target - origin, dim=-1)
    return origin.to(dtype=dtype, device=device), d.to(dtype=dtype, device=device)


def _sparse_grid(
    device, levels: int = 1, res: int = 16, frac: float = 0.08, seed: int = 0
) -> ops.OccupancyGrid:
    grid = ops.OccupancyGrid(1.0, resolution=res, levels=levels, device=device)
    g = torch.Generator().manual_seed(seed)
    grid.binaries.copy_(torch.rand(grid.binaries.shape, generator=g) < frac)
    return grid


def _assert_same_samples(a: ops.RaySamples, b: tuple) -> None:
    for name, x, y in zip(ops.RaySamples._fields, a, b, strict=True):
        assert torch.equal(x, y), f"{name} differs from the reference"


# ---- ray / box ----------------------------------------------------------------------
def test_ray_aabb_hand_checked(device):
    o = torch.tensor(
        [[0.0, 0.0, -3.0], [5.0, 5.0, 5.0], [0.2, 0.1, 0.0], [0.5, 2.0, 0.0], [0.5, 0.5, 0.0]], device=device
    )
    d = torch.tensor(
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -2.0]], device=device
    )
    t_near, t_far, hit = ops.ray_aabb_intersect(o, d, 1.0)
    assert hit.tolist() == [True, False, True, False, True]
    torch.testing.assert_close(t_near.cpu(), torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(t_far.cpu(), torch.tensor([4.0, 0.0, 1.0, 0.0, 0.5]))  # |d| = 2 halves t
    t_near, t_far, hit = ops.ray_aabb_intersect(o, d, [-1, -1, -1, 1, 1, 1], near_plane=2.5, far_plane=3.5)
    torch.testing.assert_close(t_near[0].cpu(), torch.tensor(2.5))
    torch.testing.assert_close(t_far[0].cpu(), torch.tensor(3.5))
    assert hit.tolist() == [True, False, False, False, False]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ray_aabb_parity(device, dtype):
    o, d = _rays(300, device, dtype)
    d[::7, 1] = 0.0  # axis-parallel rays
    box = (-0.5, -1.0, -0.8, 0.7, 1.0, 0.9)
    out = ops.ray_aabb_intersect(o, d, box, near_plane=0.1)
    out_ref = ref.ray_aabb_intersect_reference(
        o, d, torch.tensor(box, dtype=torch.float64, device=device), 0.1
    )
    for a, b in zip(out, out_ref, strict=True):
        assert torch.equal(a, b)
    assert 0 < int(out[2].sum()) < 300


# ---- marching: exact parity with the reference ------------------------------------------
@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("cone_angle", [0.0, 0.02])
@pytest.mark.parametrize("stratified", [False, True])
def test_march_parity_sparse_grid(device, levels, cone_angle, stratified):
    o, d = _rays(160, device)
    grid = _sparse_grid(device, levels)
    kw = dict(cone_angle=cone_angle, stratified=stratified, generator=7, n_samples=128)
    samples = ops.march_rays(o, d, grid, **kw)
    jitter = ops.ray_marching._jitter(160, o.dtype, o.device, 7) if stratified else None
    expected = ref.march_rays_reference(
        o,
        d,
        grid.binaries,
        grid.level_aabbs(o.dtype),
        grid.step_size * 512 / 128,
        cone_angle,
        0.0,
        math.inf,
        jitter,
    )
    _assert_same_samples(samples, expected)
    assert samples.n_samples > 0
    # every sample's midpoint is in an occupied cell, and samples are ordered along each ray
    mid = (samples.t_starts + samples.t_ends) / 2
    assert bool(grid.query(o[samples.ray_indices] + mid[:, None] * d[samples.ray_indices]).all())
    same_ray = samples.ray_indices[1:] == samples.ray_indices[:-1]
    assert bool((samples.t_starts[1:][same_ray] >= samples.t_ends[:-1][same_ray] - 1e-6).all())


def test_march_parity_dense_box_float64(device):
    o, d = _rays(64, device, torch.float64)
    samples = ops.march_rays(
        o, d, aabb=[-1, -0.5, -1, 1, 0.5, 1], step_size=0.01, near_plane=1.0, far_plane=4.0
    )
    boxes = torch.tensor([[-1, -0.5, -1, 1, 0.5, 1]], dtype=torch.float64, device=device)
    expected = ref.march_rays_reference(o, d, None, boxes, 0.01, 0.0, 1.0, 4.0)
    _assert_same_samples(samples, expected)
    # dense box: consecutive samples tile [t_0, t_far) with the fixed step
    t_near, t_far, hit = ops.ray_aabb_intersect(
        o, d, [-1, -0.5, -1, 1, 0.5, 1], near_plane=1.0, far_plane=4.0
    )
    counts = samples.packed_info[:, 1]
    expected_counts = torch.where(hit, torch.ceil((t_far - t_near) / 0.01 - 0.5), torch.zeros_like(t_far))
    assert torch.allclose(counts.double(), expected_counts, atol=1)
    torch.testing.assert_close(samples.t_ends - samples.t_starts, torch.full_like(samples.t_starts, 0.01))


def test_default_step_is_diagonal_over_n_samples(device):
    o = torch.tensor([[0.0, 0.0, -3.0]], device=device)
    d = torch.tensor([[0.0, 0.0, 1.0]], device=device)
    samples = ops.march_rays(o, d, aabb=0.5)  # defaults: n_samples=512, step = sqrt(3) * 2 * 0.5 / 512
    step = math.sqrt(3) / 512
    torch.testing.assert_close(samples.t_ends - samples.t_starts, torch.full_like(samples.t_starts, step))
    assert abs(samples.n_samples - math.ceil(1.0 / step - 0.5)) <= 1
    assert samples.packed_info.tolist() == [[0, samples.n_samples]]


def test_stratified_jitter_is_deterministic(device):
    o, d = _rays(32, device)
    grid = _sparse_grid(device, frac=0.3)
    a = ops.march_rays(o, d, grid, stratified=True, generator=123)
    b = ops.march_rays(o, d, grid, stratified=True, generator=torch.Generator().manual_seed(123))
    c = ops.march_rays(o, d, grid, stratified=True, generator=124)
    plain = ops.march_rays(o, d, grid)
    _assert_same_samples(a, tuple(b))
    assert not torch.equal(a.t_starts[:10], c.t_starts[:10])
    # the jitter shifts each ray's first step by less than one step
    t_near, _, hit = ops.ray_aabb_intersect(o, d, 1.0)
    first = plain.t_starts[plain.packed_info[:, 0][plain.packed_info[:, 1] > 0]]
    assert bool((first >= t_near[plain.packed_info[:, 1] > 0] - 1e-6).all())


# ---- marching: edge cases ----------------------------------------------------------------------
def test_rays_that_miss_and_empty_grid(device):
    o = torch.tensor([[5.0, 5.0, 5.0], [0.0, 0.0, -3.0], [0.0, 0.0, 0.0]], device=device)
    d = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]], device=device
    )  # miss, hit, zero dir
    grid = ops.OccupancyGrid(1.0, resolution=8, device=device)  # all occupied at creation
    samples = ops.march_rays(o, d, grid, n_samples=64)
    counts = samples.packed_info[:, 1].tolist()
    assert counts[0] == 0 and counts[1] > 0 and counts[2] == 0
    grid.binaries.zero_()
    empty = ops.march_rays(o, d, grid, n_samples=64)
    assert empty.n_samples == 0 and empty.packed_info.shape == (3, 2)
    assert empty.packed_info[:, 1].sum() == 0 and empty.t_starts.dtype == o.dtype
    # zero rays
    none = ops.march_rays(o[:0], d[:0], grid)
    assert none.n_samples == 0 and none.packed_info.shape == (0, 2)


def test_marching_feeds_compositing(device):
    o, d = _rays(40, device)
    grid = _sparse_grid(device, frac=0.4)
    s = ops.march_rays(o, d, grid, n_samples=64)
    sigmas = torch.full_like(s.t_starts, 5.0, requires_grad=True)
    weights, _, _ = ops.render_weight_from_density(s.t_starts, s.t_ends, sigmas, s.packed_info)
    opacity = ops.accumulate_along_rays(weights, None, s.ray_indices, s.n_rays)
    torch.testing.assert_close(opacity, ops.accumulate_along_rays(weights, None, s.packed_info))
    assert bool((opacity <= 1 + 1e-6).all()) and float(opacity.detach().max()) > 0.5
    opacity.sum().backward()
    assert torch.isfinite(sigmas.grad).all()


def test_march_validation(device):
    o, d = _rays(4, device)
    grid = ops.OccupancyGrid(1.0, resolution=8, device=device)
    with pytest.raises(ValueError, match=r"march_rays\(\): give an OccupancyGrid or an aabb"):
        ops.march_rays(o, d)
    with pytest.raises(ValueError, match=r"not both"):
        ops.march_rays(o, d, grid, aabb=1.0)
    with pytest.raises(TypeError, match=r"grid must be a csdkit.ops.OccupancyGrid"):
        ops.march_rays(o, d, "grid")
    with pytest.raises(ValueError, match=r"rays_d must be float32 \[R, 3\]"):
        ops.march_rays(o, d[:, :2], grid)
    with pytest.raises(TypeError, match=r"rays_d must be float32"):
        ops.march_rays(o, d.double(), grid)
    with pytest.raises(ValueError, match=r"step_size must be in"):
        ops.march_rays(o, d, grid, step_size=0.0)
    with pytest.raises(ValueError, match=r"cone_angle must be in"):
        ops.march_rays(o, d, grid, cone_angle=-1.0)
    with pytest.raises(ValueError, match=r"aabb must be finite with min < max"):
        ops.march_rays(o, d, aabb=[0, 0, 0, 1, -1, 1])
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        ops.march_rays(o, d, grid, stratified=True, generator="seed")
    with pytest.raises(
        ValueError, match=r"ray_aabb_intersect\(\): rays_o must be float32 or float64 \[R, 3\]"
    ):
        ops.ray_aabb_intersect(o[:, :2], d, 1.0)


def test_march_same_samples_on_every_device(device):
    """A seed gives the same samples on the CPU and on the GPU (products are never fused into FMAs)."""
    o, d = _rays(64, "cpu")
    grid = _sparse_grid("cpu", levels=2, frac=0.2)
    cpu = ops.march_rays(o, d, grid, stratified=True, generator=5, n_samples=128)
    grid_dev = _sparse_grid(device, levels=2, frac=0.2)
    dev = ops.march_rays(o.to(device), d.to(device), grid_dev, stratified=True, generator=5, n_samples=128)
    _assert_same_samples(cpu, tuple(x.cpu() for x in dev))
