"""Compositing kernels: golden values, parity with the PyTorch reference (forward and gradients),
float64 gradcheck, early stop, packed edge cases and input validation."""

from __future__ import annotations

import csdkit.ops as ops
import pytest
import torch
from csdkit.ops import reference as ref

GOLDEN_SIGMAS = [0.4, 0.8, 0.1, 0.8, 0.1]
GOLDEN_PACKED = [[0, 1], [1, 0], [1, 4]]
GOLDEN_WEIGHTS = [0.3297, 0.5507, 0.0428, 0.2239, 0.0174]
GOLDEN_GRAD = [0.6703, 0.1653, 0.1653, 0.1653, 0.1653]


def _packed(counts: list[int] | torch.Tensor, device) -> torch.Tensor:
    counts = torch.as_tensor(counts, dtype=torch.long)
    starts = torch.cumsum(counts, 0) - counts
    return torch.stack([starts, counts], 1).to(device)


def _random_samples(n_rays: int, max_count: int, dtype, device, sigma_scale: float = 3.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_count + 1, (n_rays,), generator=g)
    info = _packed(counts, device)
    s = int(counts.sum())
    t_starts = torch.rand(s, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    t_ends = (
        t_starts + 0.05 + 0.5 * torch.rand(s, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    )
    sigmas = (sigma_scale * torch.rand(s, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)
    return t_starts, t_ends, sigmas, info


# ---- golden case (hand-checked in the issue) -----------------------------------------------------------
@pytest.mark.parametrize("force_reference", [False, True], ids=["kernel", "reference"])
def test_golden_case(device, force_reference, monkeypatch):
    if force_reference:
        monkeypatch.setenv("CSDKIT_FORCE_REFERENCE", "1")
    sigmas = torch.tensor(GOLDEN_SIGMAS, dtype=torch.float64, device=device, requires_grad=True)
    t_starts = torch.arange(5, dtype=torch.float64, device=device)
    info = torch.tensor(GOLDEN_PACKED, device=device)
    weights, trans, alphas = ops.render_weight_from_density(t_starts, t_starts + 1, sigmas, info)
    torch.testing.assert_close(
        weights.cpu(), torch.tensor(GOLDEN_WEIGHTS, dtype=torch.float64), atol=5e-5, rtol=0
    )
    torch.testing.assert_close(alphas, -torch.expm1(-sigmas.detach()))
    torch.testing.assert_close(trans[:2].cpu(), torch.ones(2, dtype=torch.float64))
    weights.sum().backward()
    torch.testing.assert_close(
        sigmas.grad.cpu(), torch.tensor(GOLDEN_GRAD, dtype=torch.float64), atol=5e-5, rtol=0
    )
    opacity = ops.accumulate_along_rays(weights.detach(), None, info)
    torch.testing.assert_close(
        opacity[:, 0].cpu(), torch.tensor([0.3297, 0.0, 0.8347], dtype=torch.float64), atol=5e-5, rtol=0
    )


def test_golden_case_from_alpha_matches_density(device):
    sigmas = torch.tensor(GOLDEN_SIGMAS, dtype=torch.float64, device=device)
    info = torch.tensor(GOLDEN_PACKED, device=device)
    w_a, t_a = ops.render_weight_from_alpha(-torch.expm1(-sigmas), info)
    t0 = torch.zeros_like(sigmas)
    w_d, t_d, _ = ops.render_weight_from_density(t0, t0 + 1, sigmas, info)
    torch.testing.assert_close(w_a, w_d)
    torch.testing.assert_close(t_a, t_d)


# ---- parity with the reference ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [1e-4, 0.0])
def test_density_parity_forward_and_backward(device, dtype, eps):
    t_starts, t_ends, sigmas, info = _random_samples(64, 40, dtype, device)
    inputs = [x.clone().requires_grad_() for x in (t_starts, t_ends, sigmas)]
    inputs_ref = [x.clone().requires_grad_() for x in (t_starts, t_ends, sigmas)]
    out = ops.render_weight_from_density(*inputs, info, early_stop_eps=eps)
    out_ref = ref.render_weight_from_density_reference(*inputs_ref, info, eps)
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {}
    for a, b in zip(out, out_ref, strict=True):
        torch.testing.assert_close(a, b, **tol)
    if eps > 0:
        assert bool((out[1] == 0).any()), "the data should exercise early stopping"
    cot = [torch.randn_like(o) for o in out]
    grads = torch.autograd.grad(out, inputs, cot)
    grads_ref = torch.autograd.grad(out_ref, inputs_ref, cot)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, **({"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_parity_forward_and_backward(device, dtype):
    _, _, sigmas, info = _random_samples(64, 40, dtype, device)
    alphas = (-torch.expm1(-sigmas)).requires_grad_()
    alphas_ref = alphas.detach().clone().requires_grad_()
    out = ops.render_weight_from_alpha(alphas, info)
    out_ref = ref.render_weight_from_alpha_reference(alphas_ref, info)
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else {}
    for a, b in zip(out, out_ref, strict=True):
        torch.testing.assert_close(a, b, **tol)
    cot = [torch.randn_like(o) for o in out]
    (g,) = torch.autograd.grad(out, [alphas], cot)
    (g_ref,) = torch.autograd.grad(out_ref, [alphas_ref], cot)
    torch.testing.assert_close(g, g_ref, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", ["packed", "ray_indices", "unsorted"])
def test_accumulate_parity(device, dtype, index):
    _, _, sigmas, info = _random_samples(48, 20, dtype, device)
    s = sigmas.shape[0]
    weights = torch.rand(s, dtype=dtype, device=device, requires_grad=True)
    values = torch.randn(s, 3, dtype=dtype, device=device, requires_grad=True)
    ray_idx = ref.compositing.ray_indices_from_packed(info, s)
    n_rays = info.shape[0]
    if index == "packed":
        out = ops.accumulate_along_rays(weights, values, info)
        opac = ops.accumulate_along_rays(weights, None, info)
    else:
        perm = torch.randperm(s, device=device) if index == "unsorted" else torch.arange(s, device=device)
        out = ops.accumulate_along_rays(weights[perm], values[perm], ray_idx[perm], n_rays)
        opac = ops.accumulate_along_rays(weights[perm], None, ray_indices=ray_idx[perm], n_rays=n_rays)
    out_ref = ref.accumulate_along_rays_reference(weights, values, ray_idx, n_rays)
    opac_ref = ref.accumulate_along_rays_reference(weights, None, ray_idx, n_rays)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(out, out_ref, **tol)
    torch.testing.assert_close(opac, opac_ref, **tol)
    assert out.shape == (n_rays, 3) and opac.shape == (n_rays, 1)
    cot, cot_o = torch.randn_like(out), torch.randn_like(opac)
    grads = torch.autograd.grad((out, opac), (weights, values), (cot, cot_o))
    grads_ref = torch.autograd.grad((out_ref, opac_ref), (weights, values), (cot, cot_o))
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, **tol)


# ---- float64 gradcheck ----------------------------------------------------------------------
def test_gradcheck_density(device):
    t_starts, t_ends, sigmas, info = _random_samples(6, 5, torch.float64, device, sigma_scale=2.0, seed=3)
    inputs = [x.clone().requires_grad_() for x in (t_starts, t_ends, sigmas)]
    torch.autograd.gradcheck(lambda a, b, c: ops.render_weight_from_density(a, b, c, info), inputs)


def test_gradcheck_alpha_and_accumulate(device):
    _, _, sigmas, info = _random_samples(6, 5, torch.float64, device, seed=4)
    alphas = (0.9 * torch.rand_like(sigmas)).requires_grad_()
    torch.autograd.gradcheck(lambda a: ops.render_weight_from_alpha(a, info), [alphas])
    weights = torch.rand_like(sigmas).requires_grad_()
    values = torch.randn(sigmas.shape[0], 2, dtype=torch.float64, device=device, requires_grad=True)
    torch.autograd.gradcheck(lambda w, v: ops.accumulate_along_rays(w, v, info), [weights, values])
    ray_idx = ref.compositing.ray_indices_from_packed(info, sigmas.shape[0])
    torch.autograd.gradcheck(
        lambda w, v: ops.accumulate_along_rays(w, v, ray_idx, info.shape[0]), [weights, values]
    )


# ---- early stop ----------------------------------------------------------------------
def test_early_stop_is_exact_in_backward(device):
    # One ray: T falls below 1e-4 after the third sample (sum of taus = 12 > -ln 1e-4 = 9.21).
    sigmas = torch.tensor(
        [1.0, 3.0, 8.0, 0.5, 0.7, 2.0], dtype=torch.float64, device=device, requires_grad=True
    )
    t0 = torch.zeros(6, dtype=torch.float64, device=device)
    info = torch.tensor([[0, 6]], device=device)
    weights, trans, alphas = ops.render_weight_from_density(t0, t0 + 1, sigmas, info)
    assert torch.all(weights[3:] == 0) and torch.all(trans[3:] == 0) and torch.all(alphas[3:] == 0)
    assert torch.all(weights[:3] > 0)
    (weights.sum() + trans.sum() + alphas.sum()).backward()
    assert torch.all(sigmas.grad[3:] == 0), "skipped samples must get exactly zero gradient"
    # Rendered samples: exact gradient of the first three samples alone (no early stop needed there).
    s3 = sigmas.detach()[:3].clone().requires_grad_()
    w3, t3, a3 = ops.render_weight_from_density(
        t0[:3], t0[:3] + 1, s3, torch.tensor([[0, 3]], device=device), early_stop_eps=0.0
    )
    (w3.sum() + t3.sum() + a3.sum()).backward()
    torch.testing.assert_close(sigmas.grad[:3], s3.grad)


def test_early_stop_disabled_renders_everything(device):
    sigmas = torch.full((8,), 5.0, dtype=torch.float64, device=device)
    t0 = torch.zeros_like(sigmas)
    info = torch.tensor([[0, 8]], device=device)
    weights, trans, _ = ops.render_weight_from_density(t0, t0 + 1, sigmas, info, early_stop_eps=0.0)
    assert torch.all(trans > 0)
    torch.testing.assert_close(trans, torch.exp(-5.0 * torch.arange(8, dtype=torch.float64, device=device)))


def test_alpha_one_has_finite_exact_gradient(device):
    alphas = torch.tensor([0.3, 1.0, 0.5], dtype=torch.float64, device=device, requires_grad=True)
    info = torch.tensor([[0, 3]], device=device)
    weights, _ = ops.render_weight_from_alpha(alphas, info, early_stop_eps=0.0)
    torch.testing.assert_close(weights, torch.tensor([0.3, 0.7, 0.0], dtype=torch.float64, device=device))
    weights.sum().backward()
    # sum w = 1 - (1-a0)(1-a1)(1-a2): d/da0 = (1-a1)(1-a2) = 0, d/da1 = (1-a0)(1-a2) = 0.35, d/da2 = 0.
    torch.testing.assert_close(
        alphas.grad, torch.tensor([0.0, 0.35, 0.0], dtype=torch.float64, device=device)
    )


# ---- packing edge cases ----------------------------------------------------------------------
def test_rays_without_samples_and_gaps(device):
    # Samples 2 and 5 belong to no ray; ray 1 and ray 3 are empty.
    sigmas = torch.tensor(
        [1.0, 2.0, 9.0, 0.5, 0.5, 9.0], dtype=torch.float64, device=device, requires_grad=True
    )
    t0 = torch.zeros_like(sigmas)
    info = torch.tensor([[0, 2], [2, 0], [3, 2], [6, 0]], device=device)
    weights, trans, alphas = ops.render_weight_from_density(t0, t0 + 1, sigmas, info)
    w_ref, t_ref, a_ref = ref.render_weight_from_density_reference(t0, t0 + 1, sigmas, info)
    torch.testing.assert_close(weights, w_ref)
    assert weights[2] == 0 and weights[5] == 0 and trans[5] == 0
    rgb = ops.accumulate_along_rays(weights, torch.ones(6, 3, dtype=torch.float64, device=device), info)
    assert torch.all(rgb[1] == 0) and torch.all(rgb[3] == 0)
    rgb.sum().backward()
    assert sigmas.grad[2] == 0 and sigmas.grad[5] == 0


def test_empty_inputs(device):
    empty = torch.zeros(0, dtype=torch.float32, device=device)
    info = torch.zeros(3, 2, dtype=torch.long, device=device)
    w, t, a = ops.render_weight_from_density(empty, empty, empty.requires_grad_(), info)
    assert w.shape == t.shape == a.shape == (0,)
    out = ops.accumulate_along_rays(w, None, info)
    assert out.shape == (3, 1) and torch.all(out == 0)
    out.sum().backward()
    none = torch.zeros(0, 2, dtype=torch.long, device=device)
    assert ops.accumulate_along_rays(w, None, none).shape == (0, 1)


def test_ray_indices_input_matches_packed_info(device):
    t_starts, t_ends, sigmas, info = _random_samples(20, 10, torch.float64, device)
    ray_idx = ref.compositing.ray_indices_from_packed(info, sigmas.shape[0])
    a = ops.render_weight_from_density(t_starts, t_ends, sigmas, info)
    b = ops.render_weight_from_density(t_starts, t_ends, sigmas, ray_indices=ray_idx.int(), n_rays=20)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)


def test_int32_packed_info_and_column_sigmas(device):
    t_starts, t_ends, sigmas, info = _random_samples(10, 8, torch.float32, device)
    a = ops.render_weight_from_density(t_starts, t_ends, sigmas[:, None], info.int())
    b = ops.render_weight_from_density(t_starts, t_ends, sigmas, info)
    torch.testing.assert_close(a[0], b[0])


# ---- validation ----------------------------------------------------------------------
def test_validation_errors(device):
    t = torch.rand(4, device=device)
    info = torch.tensor([[0, 4]], device=device)
    with pytest.raises(TypeError, match=r"render_weight_from_density\(\): sigmas must be float32 or float64"):
        ops.render_weight_from_density(t, t, torch.ones(4, dtype=torch.int64, device=device), info)
    with pytest.raises(ValueError, match=r"t_ends has S=5"):
        ops.render_weight_from_density(t, torch.rand(5, device=device), t, info)
    with pytest.raises(TypeError, match=r"t_starts must be float32"):
        ops.render_weight_from_density(t.double(), t, t, info)
    with pytest.raises(ValueError, match=r"overlapping"):
        ops.render_weight_from_density(t, t, t, torch.tensor([[0, 3], [2, 2]], device=device))
    with pytest.raises(ValueError, match=r"beyond the 4 samples"):
        ops.render_weight_from_density(t, t, t, torch.tensor([[2, 3]], device=device))
    with pytest.raises(ValueError, match=r"negative"):
        ops.render_weight_from_alpha(t, torch.tensor([[0, -1]], device=device))
    with pytest.raises(ValueError, match=r"packed_info must be int32 or int64 \[\*, 2\]"):
        ops.render_weight_from_alpha(t, torch.tensor([[0, 1, 2]], device=device))
    with pytest.raises(ValueError, match=r"exactly one of packed_info"):
        ops.render_weight_from_alpha(t)
    with pytest.raises(ValueError, match=r"ray_indices must be sorted"):
        ops.render_weight_from_alpha(t, ray_indices=torch.tensor([0, 1, 0, 1], device=device), n_rays=2)
    with pytest.raises(ValueError, match=r"n_rays is required"):
        ops.accumulate_along_rays(t, None, torch.tensor([0, 0, 1, 1], device=device))
    with pytest.raises(ValueError, match=r"ray_indices must lie in \[0, 2\)"):
        ops.accumulate_along_rays(t, None, torch.tensor([0, 0, 1, 2], device=device), 2)
    with pytest.raises(ValueError, match=r"values has S=3"):
        ops.accumulate_along_rays(t, torch.ones(3, 2, device=device), info)
    with pytest.raises(ValueError, match=r"early_stop_eps must be in"):
        ops.render_weight_from_alpha(t, info, early_stop_eps=2.0)
