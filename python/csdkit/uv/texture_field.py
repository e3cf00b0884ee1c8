"""Learnable texture parametrizations for :class:`~csdkit.TexturedMesh`.

* ``"pyramid"`` (default): a Laplacian-style pyramid of texel grids at sizes ``S, S/2, ..., >= 16``;
  the texture is ``sigmoid(sum_k upsample(level_k))``. A gradient on one rendered pixel reaches a
  whole neighbourhood through the coarse levels, so noisy score-distillation gradients average out
  and colours settle globally before details appear.
* ``"texels"``: one grid ``[S, S, 3]`` of logits, ``texture = sigmoid(logits)``; every texel is free.
* ``"hashgrid"``: a 2-D multiresolution hash grid plus a linear head on UV coordinates, evaluated
  per pixel while rendering and baked to a ``[S, S, 3]`` texture at export.

All return textures as ``[S, S, 3]`` float32 in [0, 1], row 0 at the top (the v = 1 edge).

Initial state (:func:`make_texture_field`): a uniform ``init_color``, or an ``init_image``
``[S, S, 3]`` that the pyramid and texel fields reproduce exactly (up to the logit clamp of
``[1e-3, 1 - 1e-3]``): pyramid = ``logit(image)`` in the finest level and zeros in the coarser ones,
texels = ``logit(image)``. The hash-grid field is a function of UV, not a texel array, so it is
*fitted* to an ``init_image`` (:meth:`HashGridTexture.fit_image`: Adam on the squared error at random
texel centres, from the image's mean colour, deterministic); the start then matches the image up to
the field's resolution (``fit_image`` returns the remaining mean absolute error).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.hash_grid_encoding import HashGridEncoding
from ..ops._checks import check_choice, check_int

PARAMETRIZATIONS = ("pyramid", "texels", "hashgrid")


def _logit(value: float) -> float:
    value = min(max(value, 1e-3), 1 - 1e-3)
    return math.log(value / (1 - value))


class TexelTexture(nn.Module):
    """``sigmoid(logits [S, S, 3])``."""

    def __init__(self, size: int, init_color: torch.Tensor, init_image: torch.Tensor | None = None) -> None:
        super().__init__()
        self.size = size
        start = init_color.expand(size, size, 3) if init_image is None else init_image
        self.logits = nn.Parameter(torch.logit(start.clamp(1e-3, 1 - 1e-3)).clone())

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class PyramidTexture(nn.Module):
    """``sigmoid(sum_k upsample(level_k))`` over levels of sizes ``S, S/2, ...`` down to ``min_size``."""

    def __init__(self, size: int, init_color: torch.Tensor, min_size: int = 16,
                 init_image: torch.Tensor | None = None) -> None:
        super().__init__()
        self.size = size
        sizes = [size]
        while sizes[-1] // 2 >= min_size:
            sizes.append(sizes[-1] // 2)
        self.sizes = sizes
        levels = [torch.zeros(3, s, s) for s in sizes]
        if init_image is None:
            levels[-1] += torch.logit(init_color.clamp(1e-3, 1 - 1e-3))[:, None, None]
        else:  # the finest level alone holds the image; coarser levels start at zero
            levels[0] = torch.logit(init_image.clamp(1e-3, 1 - 1e-3)).permute(2, 0, 1).contiguous()
        self.levels = nn.ParameterList([nn.Parameter(lv) for lv in levels])

    def forward(self) -> torch.Tensor:
        total = self.levels[0]
        for lv in self.levels[1:]:
            total = total + nn.functional.interpolate(lv[None], size=(self.size, self.size), mode="bilinear",
                                                      align_corners=False)[0]
        return torch.sigmoid(total).permute(1, 2, 0)


class HashGridTexture(nn.Module):
    """Colour field on UV space: ``sigmoid(head(hash_grid(uv)))``; baked at texel centres."""

    def __init__(self, size: int, init_color: torch.Tensor, n_levels: int = 12, log2_hashmap_size: int = 17) -> None:
        super().__init__()
        self.size = size
        self.encoding = HashGridEncoding(2, n_levels=n_levels, n_features_per_level=2,
                                         log2_hashmap_size=log2_hashmap_size, base_resolution=8,
                                         per_level_scale=math.exp(math.log(size / 8) / max(n_levels - 1, 1)))
        self.head = nn.Linear(self.encoding.n_output_dims, 3)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.copy_(torch.logit(init_color.clamp(1e-3, 1 - 1e-3)))

    def fit_image(self, image: torch.Tensor, steps: int = 300, batch: int = 2**15, lr: float = 0.02,
                  seed: int = 0) -> float:
        """Fit the field to ``image`` (``[S, S, 3]`` float in [0, 1], row 0 = the v = 1 edge) in place.

        Adam on the mean squared colour error at ``batch`` random texel centres per step (a seeded
        generator: the same image gives the same field). Returns the mean absolute error over all texels
        afterwards.
        """
        device = self.head.weight.device
        target = image.to(device, torch.float32).reshape(-1, 3)
        s = self.size
        c = (torch.arange(s, dtype=torch.float32, device=device) + 0.5) / s
        v, u = torch.meshgrid(1.0 - c, c, indexing="ij")
        uv = torch.stack([u, v], dim=-1).reshape(-1, 2)
        with torch.no_grad():
            self.head.bias.copy_(torch.logit(target.mean(0).clamp(1e-3, 1 - 1e-3)))
        optimizer = torch.optim.Adam(self.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-15)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            idx = torch.randint(0, uv.shape[0], (min(batch, uv.shape[0]),), generator=generator).to(device)
            loss = ((self.colors(uv[idx]) - target[idx]) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            return float((self.forward().reshape(-1, 3) - target).abs().mean())

    def colors(self, uv: torch.Tensor) -> torch.Tensor:
        """``uv [..., 2]`` (origin bottom-left) -> colours ``[..., 3]`` in [0, 1]."""
        flat = uv.reshape(-1, 2).clamp(0, 1).contiguous()
        return torch.sigmoid(self.head(self.encoding(flat))).reshape(*uv.shape[:-1], 3)

    def forward(self) -> torch.Tensor:
        c = (torch.arange(self.size, dtype=torch.float32, device=self.head.weight.device) + 0.5) / self.size
        v, u = torch.meshgrid(1.0 - c, c, indexing="ij")  # row 0 = the v = 1 edge
        return self.colors(torch.stack([u, v], dim=-1))


def _check_init_image(init_image, size: int) -> torch.Tensor:
    """``init_image`` as a CPU float32 ``[S, S, 3]`` tensor clamped to [0, 1] (ValueError otherwise)."""
    if not isinstance(init_image, torch.Tensor):
        raise ValueError(f"make_texture_field(): init_image must be a float tensor [{size}, {size}, 3] in [0, 1], "
                         f"got {type(init_image).__name__}")
    if not init_image.is_floating_point():
        raise ValueError(f"make_texture_field(): init_image must be a float tensor [{size}, {size}, 3] in [0, 1], "
                         f"got dtype {init_image.dtype} with shape {list(init_image.shape)}")
    if tuple(init_image.shape) != (size, size, 3):
        raise ValueError(f"make_texture_field(): init_image must have shape [{size}, {size}, 3] (texture_size "
                         f"{size}, RGB), got shape {list(init_image.shape)}")
    image = init_image.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(image).all()):
        raise ValueError("make_texture_field(): init_image must be finite (values in [0, 1])")
    return image.clamp(0, 1)


def make_texture_field(parametrization: str, size: int, init_color=0.5, *,
                       init_image: torch.Tensor | None = None) -> nn.Module:
    """Build the module for ``parametrization`` (see module doc).

    Args:
        parametrization: ``"pyramid"``, ``"texels"`` or ``"hashgrid"``.
        size: texture side ``S`` (16 to 8192).
        init_color: uniform initial colour, a grey level or RGB in [0, 1] (ignored with ``init_image``).
        init_image: optional ``[S, S, 3]`` float tensor in [0, 1] (any float dtype and device; row 0 =
            the v = 1 edge, like the textures) the field starts from: exactly for ``"pyramid"`` and
            ``"texels"``, fitted (:meth:`HashGridTexture.fit_image`) for ``"hashgrid"``.

    Returns:
        The module (on the CPU); calling it gives the texture ``[S, S, 3]`` float32 in [0, 1].

    Raises:
        ValueError: unknown parametrization, bad size, or an ``init_image`` of the wrong type, dtype or shape.
    """
    check_choice("TexturedMesh", "parametrization", parametrization, PARAMETRIZATIONS)
    check_int("TexturedMesh", "texture_size", size, min_value=16, max_value=8192)
    image = None if init_image is None else _check_init_image(init_image, size)
    if image is not None:
        color = image.reshape(-1, 3).mean(0)
    else:
        color = torch.as_tensor(init_color, dtype=torch.float32).reshape(-1).expand(3).clone()
    if parametrization == "pyramid":
        return PyramidTexture(size, color, init_image=image)
    if parametrization == "texels":
        return TexelTexture(size, color, init_image=image)
    field = HashGridTexture(size, color)
    if image is not None:
        field.fit_image(image)
    return field
