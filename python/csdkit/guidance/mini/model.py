"""The MiniPrior network: a small diffusers ``UNet2DConditionModel`` plus :class:`TextEncoder`,
and the standard 1000-step DDPM noise schedule.

``diffusers`` is imported lazily (only when a network is built), so importing csdkit stays fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .text import MAX_TOKENS, VOCAB, TextEncoder


@dataclass
class MiniPriorConfig:
    """Architecture and schedule of a MiniPrior (saved next to the weights as JSON)."""

    resolution: int = 32
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    # Attention (self + cross) only at the 8x8 level: at 16x16 it cost half of a training step on
    # a CPU (head dim 8 is slow there) while colour reaches every block through ``global_text``.
    down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    cross_attention_dim: int = 64
    attention_head_dim: int = 8
    norm_num_groups: int = 16
    # Also feed the text encoder's first-token output (a pooled summary of the prompt) through a
    # projection into the U-Net's timestep embedding, so every ResNet block sees the prompt (colour
    # is a global property; cross-attention alone learns it much more slowly).
    global_text: bool = True
    vocab: tuple[str, ...] = field(default_factory=lambda: VOCAB)
    max_tokens: int = MAX_TOKENS
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> MiniPriorConfig:
        data = json.loads(text)
        for key in ("block_out_channels", "down_block_types", "up_block_types", "vocab"):
            data[key] = tuple(data[key])
        data.setdefault("global_text", False)  # configs written before the option existed
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> MiniPriorConfig:
        return cls.from_json(Path(path).read_text())


def ddpm_alphas_cumprod(cfg: MiniPriorConfig) -> torch.Tensor:
    """``[T]`` float32 ``abar_t`` of the linear-beta DDPM schedule (Ho et al. 2020)."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


class MiniDenoiser(nn.Module):
    """Text encoder + U-Net. ``forward(x_t [N,3,R,R], t [N], context [N,L,D]) -> eps [N,3,R,R]``."""

    def __init__(self, cfg: MiniPriorConfig):
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.cfg = cfg
        self.text = TextEncoder(len(cfg.vocab), cfg.cross_attention_dim, cfg.max_tokens)
        self.unet = UNet2DConditionModel(
            sample_size=cfg.resolution, in_channels=3, out_channels=3,
            block_out_channels=tuple(cfg.block_out_channels),
            down_block_types=tuple(cfg.down_block_types), up_block_types=tuple(cfg.up_block_types),
            layers_per_block=cfg.layers_per_block, cross_attention_dim=cfg.cross_attention_dim,
            attention_head_dim=cfg.attention_head_dim, norm_num_groups=cfg.norm_num_groups,
            class_embed_type="projection" if cfg.global_text else None,
            projection_class_embeddings_input_dim=cfg.cross_attention_dim if cfg.global_text else None,
        )

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text(ids)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        pooled = context[:, 0] if self.cfg.global_text else None
        return self.unet(x_t, t, encoder_hidden_states=context, class_labels=pooled, return_dict=False)[0]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
