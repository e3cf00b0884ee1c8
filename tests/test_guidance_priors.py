"""CSD and SDS end to end on tiny random Stable Diffusion / DeepFloyd IF priors: with the U-Net's
outputs captured, the gradient equals the formula, one batched U-Net call is made, and
``loss.backward()`` carries ``grad / B`` through the VAE encoder into the images."""

from __future__ import annotations

import pytest
import torch

import csdkit
from csdkit.guidance import CSD, SDS, Schedule, build_prior, guidance_preset


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU OpenMP spinning costs 100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def capture_unet(prior) -> list[dict]:
    calls: list[dict] = []

    def hook(module, args, kwargs, output):
        calls.append({"x": args[0].detach().clone(), "t": args[1].clone(),
                      "emb": kwargs["encoder_hidden_states"].detach().clone(),
                      "out": output.sample.detach().clone()})

    prior.unet.register_forward_hook(hook, with_kwargs=True)
    return calls


@pytest.mark.parametrize("step, beta", [(0, 1.0), (5000, 0.75), (10000, 0.5), (20000, 0.5)])
def test_csd_on_stable_diffusion_equals_formula(device, step, beta):
    prior = build_prior("sd-tiny", device=device, dtype=torch.float32, latent_mode="mean")
    calls = capture_unet(prior)
    csd = CSD(prior, "a wooden chair", "ugly", negative_weight=Schedule.linear(0, 1.0, 0.5, 10000),
              weighting="one_minus_abar", t_range=(0.02, 0.5))
    images = torch.rand(2, 3, 32, 32, device=device, requires_grad=True)
    out = csd(images, step=step, generator=torch.Generator().manual_seed(step))
    out.loss.backward()

    assert len(calls) == 1 and calls[0]["x"].shape == (6, 4, 8, 8)  # one call, N = 3B
    eps = calls[0]["out"]
    e_y, e_neg, e_0 = eps[0:2], eps[2:4], eps[4:6]
    w = (1 - prior.alphas_cumprod[out.t]).view(-1, 1, 1, 1)
    expected = w * ((e_y - e_0) - beta * (e_neg - e_0))
    torch.testing.assert_close(out.grad, expected, rtol=1e-5, atol=1e-6)
    assert out.t.min() >= 20 and out.t.max() <= 500
    emb = prior.embed(["a wooden chair", "ugly", ""])
    for i in range(3):
        torch.testing.assert_close(calls[0]["emb"][2 * i:2 * i + 2], emb[i].expand(2, -1, -1))

    # d loss / d latents = grad / B, and through the (deterministic) VAE encoder into the images
    images2 = images.detach().clone().requires_grad_(True)
    z = prior.encode(images2)
    torch.testing.assert_close(z.detach(), out.x.detach())
    (vjp,) = torch.autograd.grad(z, images2, expected / 2)
    torch.testing.assert_close(images.grad, vjp, rtol=1e-4, atol=1e-7)


def test_csd_latent_gradient_is_grad_over_batch(device):
    prior = build_prior("sd-tiny", device=device, dtype=torch.float32)
    csd = CSD(prior, "a wooden chair")
    images = torch.rand(3, 3, 32, 32, device=device, requires_grad=True)
    out = csd(images, step=0, generator=torch.Generator().manual_seed(0))
    (dx,) = torch.autograd.grad(out.loss, out.x)
    torch.testing.assert_close(dx, out.grad / 3)


def test_sds_on_deepfloyd_if_equals_formula(device):
    prior = build_prior("if-tiny", device=device, dtype=torch.float32)
    calls = capture_unet(prior)
    sds = SDS(prior, "a corgi", guidance_scale=20.0)
    images = torch.rand(2, 3, 32, 32, device=device, requires_grad=True)  # resized to 16x16
    out = sds(images, step=0, generator=torch.Generator().manual_seed(4))
    out.loss.backward()

    assert len(calls) == 1 and calls[0]["out"].shape == (4, 6, 16, 16)  # noise + learned variance
    eps = calls[0]["out"][:, :3]
    e_y, e_0 = eps[0:2], eps[2:4]
    abar = prior.alphas_cumprod[out.t].view(-1, 1, 1, 1)
    x = prior.encode(images.detach())
    noise = (calls[0]["x"][0:2] - abar.sqrt() * x) / (1 - abar).sqrt()
    expected = (1 - abar) * (e_y + 20.0 * (e_y - e_0) - noise)
    torch.testing.assert_close(out.grad, expected, rtol=1e-4, atol=1e-5)

    images2 = images.detach().clone().requires_grad_(True)
    (vjp,) = torch.autograd.grad(prior.encode(images2), images2, expected / 2)
    torch.testing.assert_close(images.grad, vjp, rtol=1e-4, atol=1e-6)


def test_nerf_preset_on_deepfloyd_if_with_cameras(device):
    prior = build_prior("if-tiny", device=device, dtype=torch.float32)
    calls = capture_unet(prior)
    csd = guidance_preset("csd-nerf-if", prior, "a corgi")
    cams = csdkit.Cameras.orbit(4, elevation=10.0, device=device)  # azimuths 0, 90, 180, 270
    images = torch.rand(4, 3, 16, 16, device=device, requires_grad=True)

    early = csd(images, step=0, cameras=cams, generator=torch.Generator().manual_seed(0))
    assert calls[-1]["x"].shape[0] == 8  # beta = 0 at step 0: prompt + empty rows only
    late = csd(images, step=6000, cameras=cams, generator=torch.Generator().manual_seed(0))
    assert calls[-1]["x"].shape[0] == 12 and late.scales["negative_weight"] == 1.0
    assert late.t.max() <= 500 and late.scales["t_max"] == 0.5
    assert early.prompts == [f"a corgi, {v} view" for v in ("front", "side", "back", "side")]
    for out in (early, late):
        assert out.grad.norm().item() == pytest.approx(1.0, rel=1e-5)  # global L2 normalization
    late.loss.backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_a_few_csd_steps_move_an_image(device):
    prior = build_prior("sd-tiny", device=device, dtype=torch.float32)
    csd = CSD(prior, "a red ball", "a blue ball", negative_weight=0.5)
    logits = torch.zeros(1, 3, 32, 32, device=device, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    g = torch.Generator().manual_seed(0)
    for step in range(3):
        opt.zero_grad()
        out = csd(torch.sigmoid(logits), step=step, generator=g)
        out.loss.backward()
        opt.step()
        assert out.num_nonfinite == 0 and out.grad_norm > 0
    assert logits.detach().abs().max() > 0.04  # three Adam steps of lr 0.05 moved it
