"""MiniPrior building blocks: procedural data, captions, tokenizer, training loop, prior interface."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from csdkit.guidance.mini.data import (
    COLORS,
    PALETTE,
    SHAPES,
    SceneBatch,
    make_batch,
    reference_colors,
    render_scenes,
    sample_scenes,
)
from csdkit.guidance.mini.model import MiniPriorConfig, ddpm_alphas_cumprod
from csdkit.guidance.mini.text import VOCAB, TextEncoder, WordTokenizer, caption_scenes
from csdkit.guidance.mini.train import export_checkpoint, read_metrics, train
from csdkit.guidance.priors.base import DiffusionPrior

TINY = MiniPriorConfig(resolution=16, block_out_channels=(16, 16, 16), cross_attention_dim=16,
                       attention_head_dim=8, norm_num_groups=8)


def _scenes(shape: str, color: str, n: int = 1, pattern: int = 0) -> SceneBatch:
    full = torch.full((n,), 0)
    return SceneBatch(shape=full + SHAPES.index(shape), pattern=full + pattern,
                      color1=full + COLORS.index(color), color2=full + (COLORS.index(color) + 1) % 12)


# ---- data -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_renders_a_centred_object(shape):
    g = torch.Generator().manual_seed(1)
    img, mask = render_scenes(_scenes(shape, "red", 4), 32, g, return_mask=True)
    assert img.shape == (4, 3, 32, 32) and mask.shape == (4, 1, 32, 32)
    assert img.min() >= 0 and img.max() <= 1
    cover = mask.mean((1, 2, 3))
    assert (cover > 0.08).all() and (cover < 0.8).all(), cover
    # The object is red where it is fully covered: red dominates after shading.
    fg = mask[:, 0] > 0.99
    r, g, b = (img[:, c][fg] for c in range(3))
    assert (r > g + 0.2).float().mean() > 0.95 and (r > b + 0.2).float().mean() > 0.95
    # Uncovered pixels are background: neutral grey (per-channel spread is only the small tint).
    bg = img.permute(1, 0, 2, 3)[:, mask[:, 0] == 0]
    assert bg.shape[1] > 100 and (bg.amax(0) - bg.amin(0)).max() < 0.06


def test_patterns_show_both_colours():
    g = torch.Generator().manual_seed(2)
    for pattern in (1, 2, 3):
        sc = SceneBatch(shape=torch.tensor([0, 1]), pattern=torch.tensor([pattern] * 2),
                        color1=torch.tensor([COLORS.index("blue")] * 2),
                        color2=torch.tensor([COLORS.index("yellow")] * 2))
        img, mask = render_scenes(sc, 32, g, return_mask=True)
        fg = mask[:, 0] > 0.99
        blue = (img[:, 2] > img[:, 0] + 0.3) & fg
        yellow = (img[:, 0] > img[:, 2] + 0.3) & fg
        assert blue.sum() > 10 and yellow.sum() > 5, (pattern, blue.sum(), yellow.sum())


def test_batches_are_reproducible_and_seed_dependent():
    a, sa, ca = make_batch(6, 16, seed=11)
    b, sb, cb = make_batch(6, 16, seed=11)
    c, _, _ = make_batch(6, 16, seed=12)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert ca == cb and torch.equal(sa.color1, sb.color1)
    assert not torch.equal(a, c)
    scenes = sample_scenes(500, torch.Generator().manual_seed(0))
    assert (scenes.color1 != scenes.color2).all()
    assert set(scenes.shape.tolist()) == set(range(len(SHAPES)))


def test_neutral_objects_stand_out_from_the_background():
    # White, grey and black objects must not vanish into the (grey) background.
    refs = reference_colors(32, per_color=4)
    for name in ("white", "gray", "black"):
        sc = _scenes("sphere", name, 16)
        img, mask = render_scenes(sc, 32, torch.Generator().manual_seed(3), return_mask=True)
        bg = img[:, :, 0, 0]
        centre = (img * mask).sum((2, 3)) / mask.sum((2, 3))
        assert ((centre - bg).abs().amax(1) > 0.1).all(), name
    assert refs.shape == (12, 3)
    # Reference colours keep the palette's hue order (red is reddest, blue bluest...).
    assert int(refs[:, 0].sub(refs[:, 1:].amax(1)).argmax()) == COLORS.index("red")
    assert int(refs[:, 2].sub(refs[:, :2].amax(1)).argmax()) == COLORS.index("blue")
    assert len(PALETTE) == 12


# ---- text -------------------------------------------------------------------------------------------
def test_captions_use_only_known_words_and_name_the_scene():
    g = torch.Generator().manual_seed(0)
    scenes = sample_scenes(400, g)
    caps = caption_scenes(scenes, g)
    tok = WordTokenizer()
    for cap in caps:
        _, unknown = tok.words(cap)
        assert not unknown, cap
    named = sum(COLORS[int(c)] in cap for c, cap in zip(scenes.color1, caps, strict=True))
    assert named > 0.7 * len(caps)
    assert any(cap.split()[-1] in SHAPES for cap in caps)


def test_tokenizer_encodes_and_warns_on_unknown_words(tmp_path):
    tok = WordTokenizer()
    ids = tok.encode(["a red sphere", ""], warn=False)
    assert ids.shape == (2, tok.max_tokens) and ids.dtype == torch.int64
    assert ids[0, :4].tolist() == [VOCAB.index("<s>"), VOCAB.index("a"), VOCAB.index("red"),
                                   VOCAB.index("sphere")]
    assert ids[1, 0] == VOCAB.index("<s>") and (ids[1, 1:] == 0).all()
    with pytest.warns(UserWarning, match="shiny, teapot"):
        ids2 = tok.encode(["a shiny RED teapot sphere"])
    assert torch.equal(ids2[0], ids[0])
    with pytest.raises(TypeError, match="prompts must be str"):
        tok.encode([3])
    tok.save(tmp_path / "v.json")
    assert WordTokenizer.load(tmp_path / "v.json").vocab == tok.vocab


def test_text_encoder_shapes_and_position_sensitivity():
    enc = TextEncoder(len(VOCAB), dim=16)
    tok = WordTokenizer()
    out = enc(tok.encode(["red and blue stripes", "blue and red stripes"], warn=False))
    assert out.shape == (2, tok.max_tokens, 16)
    assert not torch.allclose(out[0], out[1])


# ---- schedule and training --------------------------------------------------------------------------
def test_schedule_matches_the_standard_ddpm_schedule():
    from diffusers import DDPMScheduler

    ours = ddpm_alphas_cumprod(MiniPriorConfig())
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").alphas_cumprod
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-6)


def test_training_resumes_exactly_and_exports_a_loadable_prior(tmp_path):
    from csdkit.guidance.mini import MiniPrior

    full = train(tmp_path / "full", steps=4, batch=2, warmup=2, cfg=TINY, ckpt_every=2, progress=False)
    train(tmp_path / "half", steps=2, batch=2, warmup=2, cfg=TINY, ckpt_every=2, progress=False)
    # The interrupted run is continued to the same 4 steps (its schedule is that of --steps 4).
    resumed = train(tmp_path / "half", steps=4, batch=2, warmup=2, cfg=TINY, ckpt_every=2, progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    rows = read_metrics(tmp_path / "half" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and all(r["loss"] > 0 for r in rows)
    assert (tmp_path / "full" / "miniprior_loss.png").stat().st_size > 0
    prior = MiniPrior(tmp_path / "full")
    assert isinstance(prior, DiffusionPrior) and prior.resolution == 16
    export_checkpoint(tmp_path / "full", tmp_path / "exp", fp16=True)
    prior16 = MiniPrior(tmp_path / "exp")
    x = prior.encode(torch.rand(2, 3, 20, 20))
    t = torch.tensor([10, 900])
    e = prior.embed(["a red cube", ""])
    torch.testing.assert_close(prior16.predict_noise(x, t, e), prior.predict_noise(x, t, e),
                               atol=2e-2, rtol=2e-2)
    cfg = json.loads((tmp_path / "full" / "run.json").read_text())
    assert cfg["steps"] == 4 and cfg["parameters"] > 0


# ---- the prior interface (shipped weights) ----------------------------------------------------------
@pytest.fixture(scope="module")
def prior():
    from csdkit.guidance.mini import MiniPrior

    return MiniPrior()


def test_shipped_prior_interface(prior, device):
    if device != "cpu":
        from csdkit.guidance.mini import MiniPrior

        prior = MiniPrior(device=device)
    r = prior.resolution
    assert prior.alphas_cumprod.shape == (1000,) and prior.num_train_timesteps == 1000
    assert not prior.latent_space
    img = torch.rand(2, 3, 64, 64, device=device, requires_grad=True)
    x = prior.encode(img)
    assert x.shape == (2, 3, r, r) and x.min() >= -1 and x.max() <= 1
    x.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    torch.testing.assert_close(prior.decode(prior.encode(img.detach()[:, :, :r, :r] * 0 + 0.25)),
                               torch.full((2, 3, r, r), 0.25, device=device))
    emb = prior.embed(["a red sphere", "", "a red sphere"])
    assert emb.shape[0] == 3 and emb.shape[2] == prior.config.cross_attention_dim
    torch.testing.assert_close(emb[0], emb[2])
    t = torch.tensor([5, 500, 995], device=device)
    eps = prior.predict_noise(torch.randn(3, 3, r, r, device=device), t, emb)
    assert eps.shape == (3, 3, r, r) and torch.isfinite(eps).all()
    # Batched prediction equals one-by-one prediction.
    x_t = torch.randn(3, 3, r, r, device=device)
    one = torch.cat([prior.predict_noise(x_t[i:i + 1], t[i:i + 1], emb[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(prior.predict_noise(x_t, t, emb), one, atol=1e-4, rtol=1e-4)


def test_prior_warns_on_unknown_words_and_validates(prior):
    with pytest.warns(UserWarning, match="spaceship"):
        prior.embed(["a red spaceship"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prior.embed(["a blue torus"])
    r = prior.resolution
    with pytest.raises(ValueError, match=r"MiniPrior.encode\(\): images must have shape \[B, 3, H, W\]"):
        prior.encode(torch.rand(3, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        prior.encode(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="list of str"):
        prior.embed([1, 2])
    emb = prior.embed(["a red cube"])
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        prior.predict_noise(torch.zeros(1, 3, r, r), torch.tensor([1000]), emb)
    with pytest.raises(ValueError, match="t must be an integer tensor"):
        prior.predict_noise(torch.zeros(1, 3, r, r), torch.tensor([0.5]), emb)
    with pytest.raises(ValueError, match="embeddings must be"):
        prior.predict_noise(torch.zeros(2, 3, r, r), torch.tensor([1, 2]), emb)
    with pytest.raises(ValueError, match="use encode"):
        prior.predict_noise(torch.zeros(1, 3, 64, 64), torch.tensor([1]), emb)
    with pytest.raises(FileNotFoundError, match="python -m csdkit.guidance.mini.train"):
        type(prior)("/nonexistent-dir")
