"""Backgrounds: what a ray sees once it leaves the object.

A background is a ``torch.nn.Module`` mapping view directions ``[B, ..., 3]`` (unit vectors,
world space, leading dimension = views) to colours ``[B, ..., 3]`` in [0, 1]. Renderers composite
``rgb = rgb_object + (1 - opacity) * background(directions)``.

* :class:`SolidBackground`: one colour (optionally learnable).
* :class:`NeuralEnvironmentMap`: a small MLP of the view direction, learned with the object
  (the "neural environment map" of DreamFusion-style text-to-3D). It can only depend on the
  direction, never on position, so it cannot imitate the object from all views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..ops._checks import check_float, check_int, check_tensor

_FLOATS = (torch.float32, torch.float64)


def _check_dirs(fn: str, dirs: torch.Tensor) -> None:
    check_tensor(fn, "dirs", dirs, dtype=_FLOATS)
    if dirs.dim() < 2 or dirs.shape[-1] != 3:
        raise ValueError(f"{fn}(): dirs must be [B, ..., 3] view directions, got shape {list(dirs.shape)}")


class Background(nn.Module):
    """Base class: ``forward(dirs [B, ..., 3]) -> colours [B, ..., 3]`` (dtype and device of ``dirs``)."""

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class SolidBackground(Background):
    """A single colour.

    Args:
        color: a number (grey level) or an RGB triple in [0, 1]; white by default.
        learnable: make the colour an ``nn.Parameter`` (kept in [0, 1] through a sigmoid).
    """

    def __init__(self, color: float | Sequence[float] = (1.0, 1.0, 1.0), learnable: bool = False) -> None:
        super().__init__()
        c = torch.as_tensor(color, dtype=torch.float32)
        if c.dim() == 0:
            c = c.expand(3).clone()
        if c.shape != (3,) or not bool(((c >= 0) & (c <= 1)).all()):
            raise ValueError(f"SolidBackground(): color must be a number or an RGB triple in [0, 1], "
                             f"got {color!r}")
        self.learnable = bool(learnable)
        if self.learnable:
            logit = torch.logit(c.clamp(1e-4, 1 - 1e-4))
            self.logit = nn.Parameter(logit)
        else:
            self.register_buffer("color", c)

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        _check_dirs("SolidBackground", dirs)
        c = torch.sigmoid(self.logit) if self.learnable else self.color
        return c.to(dirs.dtype).expand(*dirs.shape[:-1], 3)

    def extra_repr(self) -> str:
        c = torch.sigmoid(self.logit) if self.learnable else self.color
        return f"color={[round(float(v), 4) for v in c]}, learnable={self.learnable}"


def frequency_encode(x: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """``[..., D]`` -> ``[..., D * (1 + 2 * n_frequencies)]``: ``x`` then ``sin/cos(2^k * pi * x)``."""
    feats = [x]
    for k in range(n_frequencies):
        f = (2.0**k) * math.pi
        feats.append(torch.sin(f * x))
        feats.append(torch.cos(f * x))
    return torch.cat(feats, dim=-1)


class NeuralEnvironmentMap(Background):
    """An MLP from the view direction to a colour (sigmoid output).

    Args:
        n_frequencies: sin/cos frequencies of the direction encoding.
        hidden_dim, n_hidden_layers: the MLP's width and depth (ReLU).
        random_aug_prob: in training mode, each view's background is replaced by a random solid
            colour with this probability (keeps the object from hiding in the background).
        generator: random source for ``random_aug_prob`` (CPU ``torch.Generator``).
        dtype, device: of the parameters.
    """

    def __init__(self, n_frequencies: int = 4, hidden_dim: int = 32, n_hidden_layers: int = 1,
                 random_aug_prob: float = 0.0, generator: torch.Generator | None = None, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        super().__init__()
        fn = "NeuralEnvironmentMap"
        check_int(fn, "n_frequencies", n_frequencies, min_value=0, max_value=16)
        check_int(fn, "hidden_dim", hidden_dim, min_value=1)
        check_int(fn, "n_hidden_layers", n_hidden_layers, min_value=0)
        check_float(fn, "random_aug_prob", random_aug_prob, min_value=0.0, max_value=1.0)
        self.n_frequencies = n_frequencies
        self.random_aug_prob = float(random_aug_prob)
        self.generator = generator
        layers: list[nn.Module] = []
        width = 3 * (1 + 2 * n_frequencies)
        for _ in range(n_hidden_layers):
            layers += [nn.Linear(width, hidden_dim, dtype=dtype, device=device), nn.ReLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, 3, dtype=dtype, device=device))
        self.mlp = nn.Sequential(*layers)

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        _check_dirs("NeuralEnvironmentMap", dirs)
        w = self.mlp[0].weight
        if dirs.dtype != w.dtype or dirs.device != w.device:
            raise ValueError(f"NeuralEnvironmentMap(): dirs must be {w.dtype} on {w.device} like the MLP, "
                             f"got {dirs.dtype} on {dirs.device}")
        rgb = torch.sigmoid(self.mlp(frequency_encode(dirs, self.n_frequencies)))
        if self.training and self.random_aug_prob > 0:
            b = dirs.shape[0]
            swap = torch.rand(b, generator=self.generator) < self.random_aug_prob
            colors = torch.rand(b, 3, generator=self.generator)
            view_shape = (b,) + (1,) * (dirs.dim() - 2) + (3,)
            swap = swap.to(dirs.device).reshape(view_shape[:-1] + (1,))
            rgb = torch.where(swap, colors.to(rgb).reshape(view_shape), rgb)
        return rgb

    def extra_repr(self) -> str:
        return f"n_frequencies={self.n_frequencies}, random_aug_prob={self.random_aug_prob}"


def as_background(value) -> Background:
    """A :class:`Background` from itself, a colour (number or RGB triple) or None (white)."""
    if value is None:
        return SolidBackground()
    if isinstance(value, Background):
        return value
    if isinstance(value, (int, float, tuple, list, torch.Tensor)) and not isinstance(value, bool):
        return SolidBackground(value)
    raise TypeError(f"background must be a csdkit Background, a colour (number or RGB triple) or None, "
                    f"got {type(value).__name__}")
