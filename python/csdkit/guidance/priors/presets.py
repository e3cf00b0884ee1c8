"""Architecture presets: random-weight priors of real (or tiny) sizes, built from configs in code.

Pretrained weights are large and gated; speed and memory do not depend on the weights, so the
benchmarks (and anyone sizing a GPU) can build the real architectures with random weights:

========== ============================================== ============================================
preset     what                                           sizes
========== ============================================== ============================================
sd21-base  Stable Diffusion 2.1 base                      U-Net 866 M, VAE 84 M, OpenCLIP-H text 340 M;
                                                          512x512 renders, 64x64x4 latents
if-i-xl    DeepFloyd IF stage I XL                        U-Net 4.3 B, 64x64 pixels; T5 **reduced** to
                                                          one layer (d_model 4096: real embedding shape)
sd-tiny    a few-thousand-parameter SD-shaped model       32x32 renders, 8x8x4 latents (tests, CPU)
if-tiny    a tiny IF-shaped model                         16x16 pixels (tests, CPU)
========== ============================================== ============================================

The T5-XXL encoder of IF (4.7 B parameters) runs once per prompt and is never part of a guidance
step, so ``if-i-xl`` builds a one-layer T5 with the real hidden size: embeddings have the real
shape ``[77, 4096]`` at a fraction of the memory. Every preset uses the download-free
:func:`~csdkit.guidance.priors.byte_tokenizer.byte_tokenizer`.

    prior = build_prior("sd21-base", device="cuda")        # fp16 on the GPU
    prior = build_prior("sd-tiny", cache_dir=False)         # CPU, float32, no disk cache
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch

from .byte_tokenizer import VOCAB_SIZE, byte_tokenizer
from .diffusers_prior import move_module
from .loading import resolve_device_dtype

_SD_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                 "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "clip_sample": False}
_IF_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                 "variance_type": "learned_range", "prediction_type": "epsilon", "thresholding": True,
                 "dynamic_thresholding_ratio": 0.95, "sample_max_value": 1.5}


def _if_unet(model_channels: int, cross_attention_dim: int, *, sample_size: int = 64, layers: int = 3,
             mult: tuple[int, ...] = (1, 2, 3, 4), attention_resolutions: tuple[int, ...] = (32, 16, 8),
             head_dim: int = 64, text_heads: int = 64, norm_groups: int = 32,
             encoder_dim: int = 4096) -> dict:
    """An IF stage-I U-Net config: ResNet up/down-sampling blocks, simple cross-attention (added
    K/V) at the listed resolutions, scale-shift time conditioning, text pooled into the time
    embedding, 6 output channels (noise + learned variance)."""
    channels = [model_channels * m for m in mult]
    down, up, res = [], [], sample_size
    for i in range(len(channels)):
        attn = res in attention_resolutions
        down.append("SimpleCrossAttnDownBlock2D" if attn else "ResnetDownsampleBlock2D")
        if i != len(channels) - 1:
            res //= 2
    for _ in channels:
        up.append("SimpleCrossAttnUpBlock2D" if res in attention_resolutions else "ResnetUpsampleBlock2D")
        res *= 2
    return {
        "sample_size": sample_size, "in_channels": 3, "out_channels": 6,
        "down_block_types": down, "up_block_types": up, "block_out_channels": channels,
        "layers_per_block": layers, "cross_attention_dim": cross_attention_dim,
        "encoder_hid_dim": encoder_dim, "attention_head_dim": head_dim,
        "addition_embed_type": "text", "addition_embed_type_num_heads": text_heads,
        "cross_attention_norm": "group_norm", "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
        "act_fn": "gelu", "resnet_time_scale_shift": "scale_shift", "resnet_skip_time_act": True,
        "norm_num_groups": norm_groups,
    }


ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd21-base": {
        "kind": "stable-diffusion",
        "unet": {
            "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
            "block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": [5, 10, 20, 20],
            "cross_attention_dim": 1024, "use_linear_projection": True, "act_fn": "silu",
            "norm_num_groups": 32,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        },
        "vae": {
            "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
            "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "sample_size": 512,
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        },
        "text_encoder": {"class": "CLIPTextModel", "vocab_size": 49408, "hidden_size": 1024,
                         "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 23,
                         "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 512},
        "scheduler": _SD_SCHEDULER,
        "max_length": 77,
    },
    "if-i-xl": {
        "kind": "deepfloyd-if",
        "unet": _if_unet(704, 2816),
        "text_encoder": {"class": "T5EncoderModel", "vocab_size": 32128, "d_model": 4096, "d_kv": 64,
                         "d_ff": 10240, "num_layers": 1, "num_heads": 64, "feed_forward_proj": "gated-gelu"},
        "scheduler": _IF_SCHEDULER,
        "max_length": 77,
    },
    "sd-tiny": {
        "kind": "stable-diffusion",
        "unet": {
            "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
            "block_out_channels": [16, 32], "attention_head_dim": 4, "cross_attention_dim": 16,
            "norm_num_groups": 8, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        },
        "vae": {
            "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
            "block_out_channels": [8, 8, 16], "norm_num_groups": 4, "sample_size": 32,
            "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
        },
        "text_encoder": {"class": "CLIPTextModel", "vocab_size": VOCAB_SIZE, "hidden_size": 16,
                         "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1,
                         "max_position_embeddings": 16, "hidden_act": "gelu", "projection_dim": 16},
        "scheduler": _SD_SCHEDULER,
        "max_length": 16,
    },
    "if-tiny": {
        "kind": "deepfloyd-if",
        "unet": _if_unet(16, 32, sample_size=16, layers=1, mult=(1, 2), attention_resolutions=(8,),
                         head_dim=8, text_heads=2, norm_groups=8, encoder_dim=16),
        "text_encoder": {"class": "T5EncoderModel", "vocab_size": VOCAB_SIZE, "d_model": 16, "d_kv": 8,
                         "d_ff": 32, "num_layers": 1, "num_heads": 2, "feed_forward_proj": "gated-gelu"},
        "scheduler": _IF_SCHEDULER,
        "max_length": 16,
    },
}


def preset_names() -> list[str]:
    """Names accepted by :func:`build_components` and :func:`build_prior`."""
    return sorted(ARCHITECTURES)


def _check_preset(fn: str, preset: Any) -> dict[str, Any]:
    if not isinstance(preset, str) or preset not in ARCHITECTURES:
        raise ValueError(f"{fn}: preset must be one of {preset_names()}, got {preset!r}")
    return copy.deepcopy(ARCHITECTURES[preset])


def _text_encoder(cfg: dict[str, Any]) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    cfg = dict(cfg)
    cls = cfg.pop("class")
    if cls == "CLIPTextModel":
        # ids of the byte tokenizer: pad 0, bos 1, eos 2
        return CLIPTextModel(CLIPTextConfig(**cfg, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    return T5EncoderModel(T5Config(**cfg, pad_token_id=0, eos_token_id=2, is_encoder_decoder=False))


def build_components(preset: str, *, seed: int = 0, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Random-weight diffusers/transformers components of an architecture preset.

    Args:
        preset: one of :func:`preset_names`.
        seed: seed of the random initialization (the global RNG state is left untouched).
        device: where the weights are created (building large presets directly on the GPU is fast).
        dtype: weight dtype.

    Returns:
        ``{"unet", "scheduler", "tokenizer", "text_encoder"}`` plus ``"vae"`` for SD presets:
        the keyword arguments of ``StableDiffusion.from_components`` / ``DeepFloydIF.from_components``.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    cfg = _check_preset("build_components()", preset)
    device = torch.device(device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), torch.device(device):
        torch.manual_seed(seed)
        parts: dict[str, Any] = {"unet": move_module(UNet2DConditionModel(**cfg["unet"]), dtype=dtype)}
        if "vae" in cfg:
            parts["vae"] = move_module(AutoencoderKL(**cfg["vae"]), dtype=dtype)
        parts["text_encoder"] = move_module(_text_encoder(cfg["text_encoder"]), dtype=dtype)
    parts["scheduler"] = DDPMScheduler(**cfg["scheduler"])
    parts["tokenizer"] = byte_tokenizer(cfg["max_length"])
    return parts


def build_prior(preset: str, *, seed: int = 0, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None, cache_dir: str | os.PathLike | None | bool = False,
                **kwargs: Any) -> Any:
    """A random-weight :class:`StableDiffusion` or :class:`DeepFloydIF` of an architecture preset.

    Args:
        preset: one of :func:`preset_names`.
        seed: initialization seed.
        device, dtype: as for the priors (default: the GPU in float16 when available).
        cache_dir: embedding cache; default ``False`` (random weights are not worth caching).
        kwargs: further options of ``from_components`` (``channels_last``, ``compile``, ...).
    """
    from .deepfloyd_if import DeepFloydIF
    from .stable_diffusion import StableDiffusion

    cfg = _check_preset("build_prior()", preset)
    dev, dt = resolve_device_dtype("build_prior()", device, dtype)
    parts = build_components(preset, seed=seed, device=dev, dtype=dt)
    name = f"random:{preset}:seed{seed}"
    cls = StableDiffusion if cfg["kind"] == "stable-diffusion" else DeepFloydIF
    return cls.from_components(**parts, name=name, device=dev, dtype=dt, cache_dir=cache_dir, **kwargs)
