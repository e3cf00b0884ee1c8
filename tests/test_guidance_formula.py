"""CSD / SDS gradients equal their formulas, checked with a stub prior whose noise predictions are
known per prompt; batching, schedules, timestep ranges, NaN handling, view prompts and errors."""

from __future__ import annotations

import zlib

import pytest
import torch

import csdkit
from csdkit.guidance import (
    CSD,
    DEFAULT_NEGATIVE_PROMPT,
    SDS,
    DiffusionPrior,
    Schedule,
    guidance_from_config,
    guidance_preset,
)
from csdkit.guidance.presets import official_scales

RES = 8


class StubPrior(DiffusionPrior):
    """Pixel-space prior whose noise prediction for prompt ``p`` is ``E[p] + 0.1 * (t / T) * x_t``.

    ``E[p]`` is a fixed random field per prompt, so ``eps_a - eps_b = E[a] - E[b]`` exactly; every
    ``predict_noise`` call is recorded.
    """

    name = "stub"
    resolution = RES

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.alphas_cumprod = torch.linspace(0.9999, 0.005, 1000, device=self.device)
        self.calls: list[dict] = []
        self.poison: dict[tuple, float] = {}  # (row, c, y, x) -> value written into the output

    def field(self, prompt: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(prompt.encode()))
        return torch.randn(3, RES, RES, generator=g).to(self.device)

    def encode(self, images):
        return 2.0 * images.float() - 1.0

    def decode(self, x):
        return (x + 1) / 2

    def embed(self, prompts):
        return torch.stack([self.field(p) for p in prompts])

    def predict_noise(self, x_t, t, embeddings):
        out = embeddings + 0.1 * (t.float() / 1000).view(-1, 1, 1, 1) * x_t
        for (row, c, y, x), v in self.poison.items():
            out[row, c, y, x] = v
        self.calls.append({"x_t": x_t.clone(), "t": t.clone(), "emb": embeddings.clone(), "out": out.clone()})
        return out


def images_for(device, b=2, requires_grad=True):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, 3, RES, RES, generator=g).to(device).requires_grad_(requires_grad)


def run(guidance, images, step, cameras=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = guidance(images, step=step, generator=g, cameras=cameras)
    out.loss.backward()
    return out


@pytest.mark.parametrize("negative_weight, step, beta", [
    (0.0, 0, 0.0),                               # plain CSD weight with a negative prompt present
    (1.0, 0, 1.0),                               # full negative
    (Schedule.linear(0, 0.0, 1.0, 5000), 0, 0.0),
    (Schedule.linear(0, 0.0, 1.0, 5000), 2500, 0.5),
    (Schedule.linear(0, 0.0, 1.0, 5000), 5000, 1.0),
    (Schedule.linear(0, 1.0, 0.5, 10000), 7500, 0.625),
])
@pytest.mark.parametrize("weighting", ["uniform", "one_minus_abar"])
def test_csd_gradient_equals_formula(device, negative_weight, step, beta, weighting):
    prior = StubPrior(device)
    csd = CSD(prior, "a red chair", "blurry", negative_weight=negative_weight, cond_scale=1.5,
              weighting=weighting)
    images = images_for(device)
    out = run(csd, images, step)
    t = out.t
    w = torch.ones(2, device=device) if weighting == "uniform" else 1 - prior.alphas_cumprod[t]
    e_y, e_neg, e_0 = prior.field("a red chair"), prior.field("blurry"), prior.field("")
    expected = w.view(-1, 1, 1, 1) * (1.5 * (e_y - e_0) - beta * (e_neg - e_0))
    torch.testing.assert_close(out.grad, expected.expand_as(out.grad), rtol=1e-5, atol=1e-6)
    assert out.scales["negative_weight"] == pytest.approx(beta)
    # d loss / d x = grad / B, and encode is x = 2 * images - 1
    torch.testing.assert_close(images.grad, 2.0 * expected.expand_as(out.grad) / 2, rtol=1e-5, atol=1e-6)
    full = expected.expand_as(out.grad)
    assert out.loss.item() == pytest.approx(0.5 * full.pow(2).sum().item() / 2, rel=1e-5)
    assert out.grad_norm == pytest.approx(expected.expand_as(out.grad).norm().item(), rel=1e-5)


def test_csd_one_batched_unet_call(device):
    prior = StubPrior(device)
    csd = CSD(prior, "a red chair", "blurry", negative_weight=Schedule.linear(0, 0.0, 1.0, 100))
    images = images_for(device, b=3)
    run(csd, images, step=50)
    assert len(prior.calls) == 1
    call = prior.calls[0]
    assert call["x_t"].shape[0] == 9 and call["t"].shape == (9,)  # N = 3B rows
    x_t, t = call["x_t"], call["t"]
    torch.testing.assert_close(x_t[0:3], x_t[3:6])
    torch.testing.assert_close(x_t[0:3], x_t[6:9])
    assert torch.equal(t[0:3], t[3:6]) and torch.equal(t[0:3], t[6:9])
    for rows, prompt in ((slice(0, 3), "a red chair"), (slice(3, 6), "blurry"), (slice(6, 9), "")):
        torch.testing.assert_close(call["emb"][rows], prior.field(prompt).expand(3, -1, -1, -1))
    # at beta = 0 the negative rows are skipped: 2B rows, still one call
    run(csd, images_for(device, b=3), step=0)
    assert len(prior.calls) == 2 and prior.calls[1]["x_t"].shape[0] == 6


def test_unet_batch_chunks_give_the_same_gradient(device):
    grads = []
    for unet_batch in (None, 2):
        prior = StubPrior(device)
        csd = CSD(prior, "a red chair", "blurry", unet_batch=unet_batch)
        out = run(csd, images_for(device, b=2), step=0, seed=3)
        grads.append(out.grad)
        assert len(prior.calls) == (1 if unet_batch is None else 3)
    torch.testing.assert_close(grads[0], grads[1])


def test_x_t_is_the_forward_diffusion_of_the_encoded_images(device):
    prior = StubPrior(device)
    csd = CSD(prior, "a red chair")
    images = images_for(device)
    out = run(csd, images, step=0)
    x_t, t = prior.calls[0]["x_t"][:2], out.t
    abar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    noise = (x_t - abar.sqrt() * (2 * images.detach() - 1)) / (1 - abar).sqrt()
    assert abs(noise.mean().item()) < 0.3 and 0.6 < noise.std().item() < 1.4  # a standard normal draw
    torch.testing.assert_close(out.x.detach(), 2 * images.detach() - 1)


@pytest.mark.parametrize("scale, negative", [
    (100.0, None), (7.5, "blurry"), (Schedule.linear(0, 50, 10, 100), None),
])
def test_sds_gradient_equals_formula(device, scale, negative):
    prior = StubPrior(device)
    sds = SDS(prior, "a red chair", scale, negative_prompt=negative)
    images = images_for(device)
    out = run(sds, images, step=40)
    s = Schedule.from_config(scale)(40)
    call = prior.calls[0]
    assert len(prior.calls) == 1 and call["x_t"].shape[0] == 4
    x_t, t = call["x_t"][:2], out.t
    abar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    x = 2 * images.detach() - 1
    noise = (x_t - abar.sqrt() * x) / (1 - abar).sqrt()
    c = 0.1 * (t.float() / 1000).view(-1, 1, 1, 1) * x_t
    eps_y = prior.field("a red chair") + c
    eps_u = prior.field(negative if negative is not None else "") + c
    expected = (1 - abar) * (eps_y + s * (eps_y - eps_u) - noise)
    torch.testing.assert_close(out.grad, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(images.grad, 2 * expected / 2, rtol=1e-4, atol=1e-4)


def test_grad_normalize_and_clip(device):
    prior = StubPrior(device)
    out = run(CSD(prior, "a", "b", grad_normalize=True), images_for(device), step=0)
    assert out.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    assert out.grad_norm == pytest.approx(1.0, rel=1e-5)
    assert out.loss.item() == pytest.approx(0.5 / 2, rel=1e-5)  # 0.5 * ||grad||^2 / B
    out = run(CSD(prior, "a", "b", grad_clip=Schedule.linear(0, 0.1, 0.5, 10)), images_for(device), step=0)
    assert out.grad.abs().max().item() == pytest.approx(0.1) and out.scales["grad_clip"] == 0.1
    raw = prior.field("a") - prior.field("b")
    torch.testing.assert_close(out.grad, raw.clamp(-0.1, 0.1).expand_as(out.grad))


def test_nan_and_inf_are_zeroed_and_counted(device):
    prior = StubPrior(device)
    prior.poison = {(0, 0, 0, 0): float("nan"), (0, 1, 2, 3): float("inf"), (3, 2, 1, 1): float("-inf")}
    csd = CSD(prior, "a red chair")  # rows: cond b0, cond b1, empty b0, empty b1
    images = images_for(device)
    out = run(csd, images, step=0)
    assert out.num_nonfinite == 3
    assert torch.isfinite(out.grad).all() and torch.isfinite(out.loss) and torch.isfinite(images.grad).all()
    assert out.grad[0, 0, 0, 0] == 0 and out.grad[0, 1, 2, 3] == 0 and out.grad[1, 2, 1, 1] == 0
    clean = prior.field("a red chair") - prior.field("")
    assert out.grad[0, 0, 0, 1] == pytest.approx(clean[0, 0, 1].item(), rel=1e-5)
    assert out.log_dict()["nonfinite"] == 3.0


def test_timesteps_stay_in_range(device):
    prior = StubPrior(device)
    csd = CSD(prior, "a", t_range=(0.1, 0.2))
    images = torch.rand(512, 3, RES, RES, device=device)
    out = csd(images, step=0, generator=torch.Generator().manual_seed(0))
    assert out.t.dtype == torch.int64 and out.t.min() >= 100 and out.t.max() <= 200
    assert out.t.unique().numel() > 90  # covers the range, not a constant


def test_if_preset_switches_t_range_after_step_5000(device):
    prior = StubPrior(device)
    csd = guidance_preset("csd-nerf-if", prior, "a corgi", view_prompts=False)
    images = torch.rand(256, 3, RES, RES, device=device)
    g = torch.Generator().manual_seed(0)
    early = csd(images, step=5000, generator=g).t
    late = csd(images, step=5001, generator=g).t
    assert early.min() >= 20 and early.max() <= 980 and early.max() > 500
    assert late.min() >= 20 and late.max() <= 500


def test_presets_match_the_official_scales():
    prior = StubPrior()
    nerf = guidance_preset("csd-nerf-if", prior, "x")
    mesh = guidance_preset("csd-mesh-sd", prior, "x")
    # csd-if.yaml: uncond [0, -0, -1, 5000], null [0, -1, 0, 5000]
    assert official_scales(nerf, 0) == pytest.approx({"cond": 1.0, "uncond": 0.0, "null": -1.0})
    assert official_scales(nerf, 2500) == pytest.approx({"cond": 1.0, "uncond": -0.5, "null": -0.5})
    assert official_scales(nerf, 5000) == pytest.approx({"cond": 1.0, "uncond": -1.0, "null": 0.0})
    # csd-sd-refine.yaml: uncond [0, -1, -0.5, 10000], null [0, 0, -0.5, 10000]
    assert official_scales(mesh, 0) == pytest.approx({"cond": 1.0, "uncond": -1.0, "null": 0.0})
    assert official_scales(mesh, 10000) == pytest.approx({"cond": 1.0, "uncond": -0.5, "null": -0.5})
    assert nerf.grad_normalize and nerf.weighting == "uniform" and not mesh.grad_normalize
    assert mesh.weighting == "one_minus_abar" and mesh.t_range[1](0) == 0.5
    assert nerf.negative_prompt == mesh.negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert DEFAULT_NEGATIVE_PROMPT == "oversaturated color, ugly, tiling, low quality, noisy"
    sds = guidance_preset("sds", prior, "x")
    assert isinstance(sds, SDS) and sds.guidance_scale(0) == 100.0


def test_config_round_trip_rebuilds_the_same_guidance(device):
    prior = StubPrior(device)
    csd = guidance_preset("csd-nerf-if", prior, "a corgi", grad_clip=2.0)
    back = guidance_from_config(csd.to_config(), prior)
    assert back.to_config() == csd.to_config()
    cams = csdkit.Cameras.orbit(2, device=device)
    a = run(csd, images_for(device), step=4321, cameras=cams, seed=5)
    b = run(back, images_for(device), step=4321, cameras=cams, seed=5)
    torch.testing.assert_close(a.grad, b.grad)
    sds = SDS(prior, "a corgi", Schedule.steps({0: 100.0, 10: 20.0}))
    assert guidance_from_config(sds.to_config(), prior).guidance_scale(10) == 20.0
    with pytest.raises(ValueError, match="unknown CSD argument"):
        guidance_from_config({"type": "CSD", "prompt": "x", "guidance_scale": 3}, prior)
    with pytest.raises(ValueError, match="must be one of"):
        guidance_from_config({"type": "VSD", "prompt": "x"}, prior)


def test_same_generator_seed_reproduces_the_step(device):
    prior = StubPrior(device)
    sds = SDS(prior, "a red chair")
    a = run(sds, images_for(device), step=3, seed=11)
    b = run(sds, images_for(device), step=3, seed=11)
    assert torch.equal(a.t, b.t) and torch.equal(a.grad, b.grad)


def test_view_dependent_prompts_follow_the_cameras(device):
    prior = StubPrior(device)
    csd = CSD(prior, "a corgi", view_prompts=True)
    cams = csdkit.Cameras.from_spherical(elevation=[0, 10, 0, -5, 70, 0], azimuth=[0, 90, 180, -90, 0, 150],
                                         distance=3.0, device=device)
    images = images_for(device, b=6)
    out = run(csd, images, step=0, cameras=cams)
    views = ["front", "side", "back", "side", "overhead", "back"]
    assert out.prompts == [f"a corgi, {v} view" for v in views]
    emb = prior.calls[0]["emb"]
    for i, v in enumerate(views):
        torch.testing.assert_close(emb[i], prior.field(f"a corgi, {v} view"))
        torch.testing.assert_close(emb[6 + i], prior.field(""))  # the empty prompt has no view suffix
    expected = torch.stack([prior.field(f"a corgi, {v} view") - prior.field("") for v in views])
    torch.testing.assert_close(out.grad, expected, rtol=1e-5, atol=1e-6)


def test_constructor_errors_name_the_argument():
    prior = StubPrior()
    with pytest.raises(TypeError, match=r"CSD\(\): prior must be a csdkit DiffusionPrior"):
        CSD(object(), "x")
    with pytest.raises(TypeError, match=r"CSD\(\): prompt must be a str"):
        CSD(prior, ["x"])
    with pytest.raises(ValueError, match=r"CSD\(\): weighting must be one of"):
        CSD(prior, "x", weighting="sds")
    with pytest.raises(ValueError, match=r"t_range\[1\] must stay within \[0, 1\]"):
        CSD(prior, "x", t_range=(0.02, 980))
    with pytest.raises(ValueError, match="needs a negative_prompt"):
        CSD(prior, "x", negative_weight=Schedule.linear(0, 0.0, 1.0, 10))
    with pytest.raises(ValueError, match="grad_clip must be positive"):
        SDS(prior, "x", grad_clip=0.0)
    with pytest.raises(ValueError, match=r"SDS\(\): unet_batch must be in"):
        SDS(prior, "x", unet_batch=0)
    with pytest.raises(ValueError, match=r"t_range must be a pair"):
        SDS(prior, "x", t_range=0.5)


@pytest.mark.parametrize("make, exc, match", [
    (lambda d: torch.rand(2, 3, RES, RES, device=d) * 255, ValueError, r"\[0, 1\].*max"),
    (lambda d: torch.rand(2, 3, RES, RES, device=d) * 2 - 1, ValueError, r"not \[-1, 1\]"),
    (lambda d: torch.rand(2, RES, RES, 3, device=d), ValueError, "channels-last"),
    (lambda d: torch.rand(3, RES, RES, device=d), ValueError, r"\[B, 3, H, W\]"),
    (lambda d: torch.randint(0, 255, (2, 3, RES, RES), device=d), TypeError, "int64"),
    (lambda d: torch.full((1, 3, RES, RES), float("nan"), device=d), ValueError, "NaN"),
    (lambda d: torch.rand(2, 3, RES, RES).numpy(), TypeError, "must be a torch.Tensor"),
])
def test_bad_images_raise(device, make, exc, match):
    csd = CSD(StubPrior(device), "x")
    with pytest.raises(exc, match=match) as info:
        csd(make(device), step=0)
    assert "CSD(): images" in str(info.value)


def test_bad_call_arguments_raise(device):
    prior = StubPrior(device)
    csd = CSD(prior, "x", view_prompts=True)
    images = images_for(device, requires_grad=False)
    with pytest.raises(ValueError, match="view_prompts=True needs cameras"):
        csd(images, step=0)
    with pytest.raises(ValueError, match="cameras hold 3 views but images hold 2"):
        csd(images, step=0, cameras=csdkit.Cameras.orbit(3, device=device))
    with pytest.raises(ValueError, match=r"CSD\(\): step must be in \[0, inf\]"):
        csd(images, step=-1, cameras=csdkit.Cameras.orbit(2, device=device))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        csd(images, step=0, generator=0, cameras=csdkit.Cameras.orbit(2, device=device))
    if device == "cpu" and torch.cuda.is_available():
        with pytest.raises(ValueError, match="the prior's device"):
            csd(images.cuda(), step=0)


def test_set_prompt_reembeds(device):
    prior = StubPrior(device)
    csd = CSD(prior, "a red chair", "blurry")
    csd.set_prompt("a blue chair")
    out = run(csd, images_for(device), step=0)
    expected = (prior.field("a blue chair") - prior.field("")) - (prior.field("blurry") - prior.field(""))
    torch.testing.assert_close(out.grad, expected.expand_as(out.grad), rtol=1e-5, atol=1e-6)
    csd.set_prompt("a blue chair", negative_prompt="a red chair")
    out = run(csd, images_for(device), step=0)
    expected = prior.field("a blue chair") - prior.field("a red chair")
    torch.testing.assert_close(out.grad, expected.expand_as(out.grad), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"CSD.set_prompt\(\): negative_prompt must be a str or None"):
        csd.set_prompt("x", negative_prompt=3)
