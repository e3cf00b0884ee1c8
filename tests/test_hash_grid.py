"""Hash-grid encoding: compiled kernels vs the pure-PyTorch reference, gradients, layout, errors."""

from __future__ import annotations

import pytest
import torch

import csdkit
from csdkit.ops import HashGridConfig, hash_grid_encode
from csdkit.ops.hash_grid_config import layout_numpy
from csdkit.ops.reference import hash_grid_encode_reference

SMALL = dict(n_levels=4, n_features_per_level=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=2.0)


def _setup(cfg: HashGridConfig, n: int, device: str, dtype=torch.float32, scale=1.0):
    x = torch.rand(n, cfg.n_input_dims, device=device, dtype=dtype)
    params = (torch.rand(cfg.n_params, cfg.n_features_per_level, device=device, dtype=dtype) * 2 - 1) * scale
    return x, params


def test_native_module_is_built():
    info = csdkit.build_info()
    assert info["native"], "csdkit._C must be importable in the test environment"
    assert info["cpu_threads"] >= 1


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
def test_forward_matches_reference(device, dims, interpolation):
    cfg = HashGridConfig(dims, interpolation=interpolation, **SMALL)
    x, params = _setup(cfg, 777, device)
    out = hash_grid_encode(x, params, config=cfg)
    ref = hash_grid_encode_reference(x, params, cfg)
    assert out.shape == (777, cfg.n_output_dims)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_default_config_dense_and_hashed_levels(device):
    cfg = HashGridConfig()  # 16 levels, 2**19 rows: coarse levels dense, fine levels hashed
    res = cfg.level_resolutions
    sizes = [b - a for a, b in zip(cfg.level_offsets[:-1], cfg.level_offsets[1:], strict=True)]
    dense = [r**3 <= s for r, s in zip(res, sizes, strict=True)]
    assert dense[0] and not dense[-1]
    x, params = _setup(cfg, 2000, device)
    torch.testing.assert_close(hash_grid_encode(x, params, config=cfg), hash_grid_encode_reference(x, params, cfg),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
def test_backward_matches_reference(device, dims, interpolation):
    cfg = HashGridConfig(dims, interpolation=interpolation, **SMALL)
    x, params = _setup(cfg, 300, device)
    g = torch.randn(300, cfg.n_output_dims, device=device)

    def grads(fn):
        xx = x.clone().requires_grad_(True)
        pp = params.clone().requires_grad_(True)
        (fn(xx, pp) * g).sum().backward()
        return xx.grad, pp.grad

    gx, gp = grads(lambda a, b: hash_grid_encode(a, b, config=cfg))
    rx, rp = grads(lambda a, b: hash_grid_encode_reference(a, b, cfg))
    torch.testing.assert_close(gp, rp, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
def test_gradcheck_float64(device, dims, interpolation):
    cfg = HashGridConfig(dims, interpolation=interpolation, n_levels=3, log2_hashmap_size=6,
                         base_resolution=3, per_level_scale=2.0)
    x, params = _setup(cfg, 6, device, torch.float64)
    x = (x * 0.9 + 0.05).requires_grad_(True)  # keep away from the clamp boundaries
    params.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: hash_grid_encode(a, b, config=cfg), (x, params),
                                    eps=1e-6, atol=1e-6, rtol=1e-4)


def test_points_on_vertices_and_boundaries(device):
    cfg = HashGridConfig(3, **SMALL)
    # 0, 1 and exact grid vertices of level 0 (position = scale * x + 0.5 is an integer there).
    s0 = cfg.level_scales[0]
    vals = torch.tensor([0.0, 1.0, 0.5 / s0, 1.5 / s0, 0.25, 0.5], dtype=torch.float32)
    x = torch.cartesian_prod(vals, vals, vals).to(device)
    _, params = _setup(cfg, 1, device)
    torch.testing.assert_close(hash_grid_encode(x, params, config=cfg), hash_grid_encode_reference(x, params, cfg),
                               rtol=1e-5, atol=1e-6)


def test_outside_unit_cube_is_clamped_with_zero_gradient(device):
    cfg = HashGridConfig(3, **SMALL)
    _, params = _setup(cfg, 1, device)
    x = torch.tensor([[-0.5, 0.3, 1.7], [0.2, 0.3, 0.4]], device=device, requires_grad=True)
    out = hash_grid_encode(x, params, config=cfg)
    clamped = hash_grid_encode(x.detach().clamp(0, 1), params, config=cfg)
    torch.testing.assert_close(out, clamped)
    out.sum().backward()
    assert x.grad[0, 0] == 0 and x.grad[0, 2] == 0
    assert x.grad[1].abs().sum() > 0


def test_linear_interpolation_reproduces_a_linear_field():
    # A single dense level filled with f(i, j, k) = i - 2j + 3k at its vertices is reproduced exactly
    # by trilinear interpolation: out = f(scale * x + 0.5).
    cfg = HashGridConfig(3, n_levels=1, n_features_per_level=1, base_resolution=6, log2_hashmap_size=12)
    res, scale = cfg.level_resolutions[0], cfg.level_scales[0]
    idx = torch.arange(cfg.n_params)
    i, j, k = idx % res, (idx // res) % res, idx // (res * res)
    params = (i - 2 * j + 3 * k).float()[:, None]
    x = torch.rand(100, 3) * 0.8 + 0.1
    pos = scale * x + 0.5
    want = pos[:, 0] - 2 * pos[:, 1] + 3 * pos[:, 2]
    torch.testing.assert_close(hash_grid_encode(x, params, config=cfg)[:, 0], want, rtol=1e-5, atol=1e-4)


def test_layout_matches_numpy_mirror():
    for cfg in (HashGridConfig(), HashGridConfig(2, n_levels=8, log2_hashmap_size=15, per_level_scale=1.5),
                HashGridConfig(3, n_levels=12, base_resolution=8, per_level_scale=1.3819)):
        offsets, res, scales = layout_numpy(cfg)
        assert cfg.level_offsets == offsets
        assert cfg.level_resolutions == res
        torch.testing.assert_close(torch.tensor(cfg.level_scales), torch.tensor(scales), rtol=1e-6, atol=0)
        assert all(o % 8 == 0 for o in cfg.level_offsets)
    # tiny-cuda-nn's default 3-D hash grid: 16 levels, 2**19 rows at the fine levels.
    assert HashGridConfig().n_params == 6299960


def test_module_init_and_state_dict_round_trip():
    enc = csdkit.HashGridEncoding(n_levels=4, log2_hashmap_size=10, base_resolution=8)
    assert enc.params.shape == (enc.config.n_params, 2)
    assert enc.params.abs().max() <= 1e-4
    assert enc.level_offsets[-1] == enc.config.n_params
    other = csdkit.HashGridEncoding(n_levels=4, log2_hashmap_size=10, base_resolution=8)
    other.load_state_dict(enc.state_dict())
    x = torch.rand(10, 3)
    torch.testing.assert_close(enc(x), other(x))
    assert "n_params=" in repr(enc)


def test_module_learns_a_2d_image():
    torch.manual_seed(0)
    enc = csdkit.HashGridEncoding(2, n_levels=6, n_features_per_level=2, log2_hashmap_size=12,
                                  base_resolution=4, per_level_scale=1.6)
    head = torch.nn.Linear(enc.n_output_dims, 1)
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-2)
    x = torch.rand(4096, 2)
    target = (torch.sin(6 * x[:, :1]) * torch.cos(4 * x[:, 1:]))
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(head(enc(x)), target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


def test_reference_fallback_env(monkeypatch):
    cfg = HashGridConfig(3, **SMALL)
    x, params = _setup(cfg, 50, "cpu")
    native = hash_grid_encode(x, params, config=cfg)
    monkeypatch.setenv("CSDKIT_FORCE_REFERENCE", "1")
    torch.testing.assert_close(hash_grid_encode(x, params, config=cfg), native, rtol=1e-5, atol=1e-6)


# ---- bad inputs -------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    cfg = HashGridConfig(3, **SMALL)
    x, params = _setup(cfg, 10, "cpu")
    with pytest.raises(TypeError, match=r"hash_grid_encode\(\): x must be float32 or float64 .*got int64"):
        hash_grid_encode(x.long(), params, config=cfg)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        hash_grid_encode(x.numpy(), params, config=cfg)
    with pytest.raises(ValueError, match=r"x must be \[N, 2\] or \[N, 3\], got \[N, 4\]"):
        hash_grid_encode(torch.rand(10, 4), params, config=cfg)
    with pytest.raises(ValueError, match=r"x must be .*\[N, \*\], got float32 \[10\]"):
        hash_grid_encode(torch.rand(10), params, config=cfg)
    with pytest.raises(TypeError, match=r"params must be float32 .*got float64"):
        hash_grid_encode(x, params.double(), config=cfg)
    with pytest.raises(ValueError, match=rf"params must be float32 \[{cfg.n_params}, 2\], got float32 \[5, 2\]"):
        hash_grid_encode(x, params[:5], config=cfg)
    with pytest.raises(ValueError, match="config.n_input_dims=3"):
        hash_grid_encode(torch.rand(10, 2), params, config=cfg)
    with pytest.raises(ValueError, match=r"n_features_per_level must be one of \[1, 2, 4, 8\], got 3"):
        HashGridConfig(3, n_features_per_level=3)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        HashGridConfig(3, interpolation="cubic")
    with pytest.raises(TypeError, match="n_levels must be an int"):
        HashGridConfig(3, n_levels=2.5)


def test_device_mismatch_is_reported():
    cfg = HashGridConfig(3, **SMALL)
    x, params = _setup(cfg, 10, "cpu")
    with pytest.raises(ValueError, match="params must be on"):
        hash_grid_encode(x, params.to("meta"), config=cfg)


def test_noncontiguous_pointer_is_refused_and_public_op_copies():
    from csdkit import _native

    cfg = HashGridConfig(3, **SMALL)
    x, params = _setup(cfg, 20, "cpu")
    wide = torch.rand(20, 6)[:, ::2]
    assert not wide.is_contiguous()
    with pytest.raises(ValueError, match="x must be contiguous"):
        _native.data_ptr("hash_grid_encode", "x", wide)
    torch.testing.assert_close(hash_grid_encode(wide, params, config=cfg),
                               hash_grid_encode(wide.contiguous(), params, config=cfg))


def test_cxx_api_rejects_bad_options():
    from csdkit import _native

    opt = _native.native().HashGridOptions()
    opt.n_dims = 5
    with pytest.raises(ValueError, match="n_dims must be 2 or 3, got 5"):
        _native.native().hashgrid_layout(opt)


def test_cpu_gradients_are_deterministic_across_thread_counts():
    """The table gradient is race-free (each thread owns whole levels), so it is bitwise the same
    for any thread count; the input gradient sums per-thread partials in a fixed order, so it is
    bitwise reproducible for a given count and equal up to rounding across counts. 5000 points:
    several blocks and a partial last block per thread, and the fused table + input pass."""
    cfg = HashGridConfig(3, n_levels=6, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4,
                         per_level_scale=2.0)
    torch.manual_seed(3)
    x, params = _setup(cfg, 5000, "cpu")
    g = torch.randn(5000, cfg.n_output_dims)
    before = csdkit.build_info()["cpu_threads"]

    def grads(threads: int):
        csdkit.set_num_threads(threads)
        xx, pp = x.clone().requires_grad_(True), params.clone().requires_grad_(True)
        (hash_grid_encode(xx, pp, config=cfg) * g).sum().backward()
        return xx.grad, pp.grad

    try:
        gx1, gp1 = grads(1)
        gx2, gp2 = grads(2)
        gx2b, gp2b = grads(2)
    finally:
        csdkit.set_num_threads(before)
    assert torch.equal(gp1, gp2) and torch.equal(gp2, gp2b)
    assert torch.equal(gx2, gx2b)
    torch.testing.assert_close(gx1, gx2, rtol=1e-5, atol=1e-5)
    rx = x.clone().requires_grad_(True)
    (hash_grid_encode_reference(rx, params, cfg) * g).sum().backward()
    torch.testing.assert_close(gx2, rx.grad, rtol=1e-4, atol=1e-4)
