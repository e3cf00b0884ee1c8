"""Stable Diffusion / DeepFloyd IF priors on tiny random diffusers components (no download):
shapes, gradients through encode, v-prediction, learned variance, the embedding cache, loading
errors, and the sizes of the real-architecture presets."""

from __future__ import annotations

import pytest
import torch

from csdkit.guidance import DeepFloydIF, ModelWeightsNotFoundError, StableDiffusion
from csdkit.guidance.priors import EmbeddingCache, build_components, build_prior
from csdkit.guidance.priors.loading import downloads_allowed


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU OpenMP spinning costs 100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def sd_parts():
    return build_components("sd-tiny", seed=0)


@pytest.fixture(scope="module")
def if_parts():
    return build_components("if-tiny", seed=0)


def count_calls(module: torch.nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_sd_shapes_and_gradient_through_the_vae(device, sd_parts):
    prior = StableDiffusion.from_components(**sd_parts, device=device, cache_dir=False)
    assert prior.latent_space and prior.resolution == 32 and prior.dtype == torch.float32
    images = torch.rand(2, 3, 48, 40, device=device, requires_grad=True)  # resized to 32x32
    z = prior.encode(images)
    assert z.shape == (2, 4, 8, 8) and z.dtype == torch.float32
    z.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    emb = prior.embed(["a cat", "a dog", ""])
    assert emb.shape == (3, 16, 16) and emb.device.type == device
    assert not torch.allclose(emb[0], emb[1])
    t = torch.tensor([10, 500], device=device)
    eps = prior.predict_noise(prior.add_noise(z.detach(), torch.randn_like(z), t), t, emb[:2])
    assert eps.shape == (2, 4, 8, 8) and torch.isfinite(eps).all()
    img = prior.decode(z.detach())
    assert img.shape == (2, 3, 32, 32) and img.min() >= 0 and img.max() <= 1


def test_sd_latent_mode_mean_is_deterministic_and_sample_uses_the_generator(sd_parts):
    mean = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False, latent_mode="mean")
    images = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(mean.encode(images), mean.encode(images))
    sample = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False, latent_mode="sample")
    a = sample.encode(images, generator=torch.Generator().manual_seed(1))
    b = sample.encode(images, generator=torch.Generator().manual_seed(1))
    c = sample.encode(images, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="latent_mode must be one of"):
        StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False, latent_mode="mode")


def test_sd_vae_slicing_matches_the_batched_encode(sd_parts):
    a = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False, latent_mode="mean")
    b = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False, latent_mode="mean",
                                        vae_slicing=True, channels_last=True)
    images = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(a.encode(images), b.encode(images), rtol=1e-4, atol=1e-5)
    t = torch.tensor([100, 200, 300])
    emb = a.embed(["x", "y", "z"])
    x_t = torch.randn(3, 4, 8, 8)
    torch.testing.assert_close(a.predict_noise(x_t, t, emb), b.predict_noise(x_t, t, emb),
                               rtol=1e-4, atol=1e-5)


def test_v_prediction_is_converted_to_epsilon(sd_parts):
    from diffusers import DDPMScheduler

    parts = dict(sd_parts)
    parts["scheduler"] = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       prediction_type="v_prediction")
    prior = StableDiffusion.from_components(**parts, device="cpu", cache_dir=False)
    x_t, t = torch.randn(2, 4, 8, 8), torch.tensor([20, 900])
    emb = prior.embed(["a", "b"])
    with torch.no_grad():
        v = prior.unet(x_t, t, encoder_hidden_states=emb).sample
    abar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(prior.predict_noise(x_t, t, emb), abar.sqrt() * v + (1 - abar).sqrt() * x_t)


def test_if_pixel_space_and_learned_variance(device, if_parts):
    prior = DeepFloydIF.from_components(**if_parts, device=device, cache_dir=False)
    assert not prior.latent_space and prior.resolution == 16 and prior.unet.config.out_channels == 6
    images = torch.rand(2, 3, 64, 64, device=device)
    x = prior.encode(images)
    torch.testing.assert_close(x, 2 * torch.nn.functional.interpolate(images, (16, 16), mode="bilinear") - 1)
    torch.testing.assert_close(prior.decode(x), (x + 1) / 2)
    emb = prior.embed(["a corgi", ""])
    t = torch.tensor([5, 700], device=device)
    eps = prior.predict_noise(x, t, emb)
    with torch.no_grad():
        raw = prior.unet(x, t, encoder_hidden_states=emb).sample
    assert eps.shape == (2, 3, 16, 16)
    torch.testing.assert_close(eps, raw[:, :3])


def test_if_drops_its_text_encoder_after_use(if_parts):
    prior = DeepFloydIF.from_components(**if_parts, device="cpu", cache_dir=False, keep_text_encoder=False)
    first = prior.embed(["a corgi"])
    assert prior.text_encoder is None  # freed right after encoding
    torch.testing.assert_close(prior.embed(["a corgi"]), first)  # memo, no encoder needed
    with pytest.raises(RuntimeError, match="not in the embedding cache"):
        prior.embed(["a new prompt"])


def test_embedding_cache_hits_on_the_second_prior(tmp_path, sd_parts):
    a = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=tmp_path)
    calls = count_calls(a.text_encoder)
    first = a.embed(["a wooden chair", ""])
    assert len(calls) == 1 and a.embedding_cache.misses == 2 and a.embedding_cache.hits == 0
    assert len(list(tmp_path.glob("*.pt"))) == 2
    a.embed(["a wooden chair"])
    assert len(calls) == 1  # memoized in memory
    b = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=tmp_path)
    assert b.cache_key == a.cache_key
    second = b.embed(["a wooden chair", ""])
    assert len(calls) == 1 and b.embedding_cache.hits == 2 and b.embedding_cache.misses == 0
    torch.testing.assert_close(first, second)


def test_embedding_cache_survives_a_corrupted_file(tmp_path, sd_parts):
    a = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=tmp_path)
    good = a.embed(["a wooden chair"])
    path = a.embedding_cache.path(a.cache_key, "a wooden chair")
    path.write_bytes(b"\x00not a torch file")
    b = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=tmp_path)
    calls = count_calls(b.text_encoder)
    with pytest.warns(RuntimeWarning, match="ignoring unreadable entry"):
        again = b.embed(["a wooden chair"])
    assert len(calls) == 1  # recomputed
    torch.testing.assert_close(again, good)
    assert EmbeddingCache(tmp_path).load(a.cache_key, "a wooden chair") is not None  # rebuilt on disk


def test_embedding_cache_rejects_an_entry_for_another_prompt(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("k", "a cat", torch.ones(2, 3))
    cache.path("k", "a dog").write_bytes(cache.path("k", "a cat").read_bytes())  # wrong content under a name
    with pytest.warns(RuntimeWarning, match="another key"):
        assert cache.load("k", "a dog") is None
    assert not cache.path("k", "a dog").exists() and cache.misses == 1
    assert torch.equal(cache.load("k", "a cat"), torch.ones(2, 3)) and cache.hits == 1
    assert cache.clear() == 1


def test_different_weights_get_different_cache_keys():
    a = build_prior("sd-tiny", seed=0, device="cpu")
    b = build_prior("sd-tiny", seed=1, device="cpu")
    assert a.cache_key != b.cache_key


def test_missing_weights_message_says_what_to_do(monkeypatch):
    monkeypatch.delenv("CSDKIT_ALLOW_DOWNLOADS", raising=False)
    with pytest.raises(ModelWeightsNotFoundError) as info:
        StableDiffusion("csdkit-tests/no-such-model", device="cpu")
    msg = str(info.value)
    assert msg.startswith("StableDiffusion(): the weights of 'csdkit-tests/no-such-model' are not on this "
                          "machine")
    assert "model='/path/to/model'" in msg and "allow_download=True" in msg
    assert "CSDKIT_ALLOW_DOWNLOADS=1" in msg
    with pytest.raises(ModelWeightsNotFoundError, match=r"DeepFloydIF\(\): the weights of"):
        DeepFloydIF("csdkit-tests/no-such-model", device="cpu")


def test_missing_local_path_message(tmp_path):
    with pytest.raises(ModelWeightsNotFoundError, match="the path does not exist"):
        StableDiffusion(str(tmp_path / "nope"), device="cpu")
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelWeightsNotFoundError, match="is not a complete diffusers folder"):
        StableDiffusion(str(tmp_path / "half"), device="cpu")


def test_saved_components_load_from_a_local_folder(tmp_path, sd_parts):
    for name, part in sd_parts.items():
        part.save_pretrained(tmp_path / name)
    prior = StableDiffusion(str(tmp_path), device="cpu", cache_dir=False)
    ref = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False)
    torch.testing.assert_close(prior.embed(["a cat"]), ref.embed(["a cat"]))
    assert prior.resolution == 32 and prior.name == str(tmp_path)


def test_downloads_allowed_reads_the_environment(monkeypatch):
    monkeypatch.setenv("CSDKIT_ALLOW_DOWNLOADS", "1")
    assert downloads_allowed(None) and not downloads_allowed(False)
    monkeypatch.setenv("CSDKIT_ALLOW_DOWNLOADS", "0")
    assert not downloads_allowed(None) and downloads_allowed(True)
    with pytest.raises(TypeError, match="allow_download must be a bool"):
        downloads_allowed("yes")


def test_component_and_argument_errors(sd_parts, if_parts):
    with pytest.raises(ValueError, match="takes 4 input channels but the VAE makes 8-channel"):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(latent_channels=8, block_out_channels=(8,), norm_num_groups=4)
        StableDiffusion.from_components(**{**sd_parts, "vae": vae}, device="cpu", cache_dir=False)
    with pytest.raises(TypeError, match="scheduler must be a diffusers DDPM-family scheduler"):
        StableDiffusion.from_components(**{**sd_parts, "scheduler": object()}, device="cpu", cache_dir=False)
    with pytest.raises(ValueError, match="takes 3 input channels"):
        DeepFloydIF.from_components(unet=sd_parts["unet"], scheduler=if_parts["scheduler"], device="cpu")
    prior = StableDiffusion.from_components(**sd_parts, device="cpu", cache_dir=False)
    with pytest.raises(TypeError, match=r"StableDiffusion.embed\(\): prompts must be a list of str"):
        prior.embed("a cat")
    with pytest.raises(ValueError, match=r"predict_noise\(\): x_t must be \[N, 4, \*, \*\]"):
        prior.predict_noise(torch.randn(2, 3, 8, 8), torch.tensor([1, 2]), prior.embed(["a", "b"]))
    with pytest.raises(ValueError, match=r"t has N=3"):
        prior.predict_noise(torch.randn(2, 4, 8, 8), torch.tensor([1, 2, 3]), prior.embed(["a", "b"]))
    with pytest.raises(TypeError, match="dtype must be"):
        StableDiffusion.from_components(**sd_parts, device="cpu", dtype=torch.float64)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            StableDiffusion.from_components(**sd_parts, device="cuda")


def test_bfloat16_prior_returns_float32_gradients(sd_parts):
    from csdkit.guidance import CSD

    prior = StableDiffusion.from_components(**sd_parts, device="cpu", dtype=torch.bfloat16, cache_dir=False)
    csd = CSD(prior, "a cat", "ugly")
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = csd(images, step=0, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert out.grad.dtype == torch.float32 and torch.isfinite(out.loss)
    assert images.grad.dtype == torch.float32 and torch.isfinite(images.grad).all()


@pytest.mark.parametrize("preset, sizes", [
    # exact parameter counts of the released models' diffusers components
    ("sd21-base", {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}),
    # IF-I-XL: "4.3B" on its model card; the text encoder is reduced on purpose (one T5 layer)
    ("if-i-xl", {"unet": 4_304_695_110}),
])
def test_architecture_presets_have_the_real_sizes(preset, sizes):
    parts = build_components(preset, device="meta")  # no memory, no init cost
    for name, n in sizes.items():
        assert sum(p.numel() for p in parts[name].parameters()) == n
    if preset == "if-i-xl":
        assert parts["text_encoder"].config.d_model == 4096 and parts["unet"].config.out_channels == 6
