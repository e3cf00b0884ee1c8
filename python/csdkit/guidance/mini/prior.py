"""``MiniPrior``: the small pixel-space text-to-image diffusion model shipped inside csdkit."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..priors.base import DiffusionPrior
from .model import MiniDenoiser, MiniPriorConfig, ddpm_alphas_cumprod
from .text import WordTokenizer

ASSETS = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS, CONFIG, VOCAB_FILE = "miniprior.safetensors", "miniprior_config.json", "miniprior_vocab.json"
# The one line a command-line tool prints when it falls back to the MiniPrior (no --model given).
DEFAULT_PRIOR_NOTICE = ("No --model given: using the embedded MiniPrior, a 32x32 toy that knows 12 colours, "
                        "stripes/checkers/dots and 5 primitive shapes (docs/miniprior.md).")


def _check_images(fn: str, name: str, x: object, channels: int | None = 3) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or (channels is not None and x.shape[1] != channels):
        want = f"[B, {channels}, H, W]" if channels is not None else "[B, C, H, W]"
        raise ValueError(f"{fn}: {name} must have shape {want}, got {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} must be a floating-point tensor, got {x.dtype}")
    return x


class MiniPrior(DiffusionPrior):
    """The embedded default prior: a ~1.7M-parameter text-conditional U-Net in pixel space.

    A toy by design: it was trained by csdkit on procedurally rendered primitives (sphere, cube,
    torus, cylinder, cone) in 12 colours, solid or with stripes, checkers or dots, over plain grey
    backgrounds (see ``docs/miniprior.md``). It knows colours, these patterns and these shapes and
    nothing else. Its value is that it needs no download and no GPU.

    Args:
        path: directory holding ``miniprior.safetensors``, ``miniprior_config.json`` and
            ``miniprior_vocab.json`` (a training run's output directory works); default: the weights
            shipped in ``csdkit/assets``.
        device: where the denoiser runs (default ``"cpu"``).
        dtype: computation dtype (float32 by default; float16/bfloat16 on GPU).

    Space: ``encode`` maps ``images [B, 3, H, W]`` in [0, 1] to ``x [B, 3, R, R]`` in [-1, 1] with
    ``R = self.resolution`` (bilinear, antialiased resize); ``embed`` returns ``[P, L, D]``.
    """

    name = "csdkit-miniprior"
    latent_space = False

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        from safetensors.torch import load_file

        root = Path(path) if path is not None else ASSETS
        missing = [f for f in (WEIGHTS, CONFIG, VOCAB_FILE) if not (root / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"MiniPrior(): {root} lacks {', '.join(missing)}; train the weights with "
                "`python -m csdkit.guidance.mini.train --out DIR` and pass MiniPrior(path=DIR)")
        if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise TypeError(f"MiniPrior(): dtype must be a floating dtype, got {dtype}")
        self.path = root
        self.config = MiniPriorConfig.load(root / CONFIG)
        self.tokenizer = WordTokenizer.load(root / VOCAB_FILE)
        self.device = torch.device(device)
        self.dtype = dtype
        self.resolution = int(self.config.resolution)
        self.model = MiniDenoiser(self.config)
        state = load_file(str(root / WEIGHTS))
        self.model.load_state_dict({k: v.float() for k, v in state.items()})
        self.model.to(self.device, dtype).eval().requires_grad_(False)
        self.alphas_cumprod = ddpm_alphas_cumprod(self.config).to(self.device)
        self._cache: dict[str, torch.Tensor] = {}

    # ---- DiffusionPrior ---------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` float in [0, 1], any device -> ``x [B, 3, R, R]`` in [-1, 1] on
        ``images.device`` (differentiable; resized when ``H, W != R``)."""
        _check_images("MiniPrior.encode()", "images", images)
        r = self.resolution
        if images.shape[-2:] != (r, r):
            images = F.interpolate(images, size=(r, r), mode="bilinear", align_corners=False,
                                   antialias=images.shape[-1] > r or images.shape[-2] > r)
        return images * 2 - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, R, R]`` in [-1, 1] -> ``images [B, 3, R, R]`` in [0, 1] (clamped)."""
        _check_images("MiniPrior.decode()", "x", x)
        return ((x + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def embed(self, prompts: list[str] | str) -> torch.Tensor:
        """``P`` prompts -> ``[P, L, D]`` (``dtype`` on ``device``; ``""`` is unconditional).

        Words outside the closed vocabulary are ignored with one warning that lists them.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"MiniPrior.embed(): prompts must be a list of str, got {prompts!r}")
        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if todo:
            ids = self.tokenizer.encode(todo).to(self.device)
            out = self.model.encode_text(ids).to(self.dtype)
            self._cache.update(zip(todo, out, strict=True))
        if not prompts:
            d = self.config.cross_attention_dim
            return torch.zeros(0, self.tokenizer.max_tokens, d, device=self.device, dtype=self.dtype)
        return torch.stack([self._cache[p] for p in prompts])

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``eps [N, 3, R, R]`` (dtype of ``x_t``, on ``x_t.device``) for ``x_t [N, 3, R, R]``,
        ``t [N]`` integer timesteps in ``[0, 1000)`` and ``embeddings [N, L, D]`` from :meth:`embed`."""
        fn = "MiniPrior.predict_noise()"
        _check_images(fn, "x_t", x_t)
        r = self.resolution
        if x_t.shape[-2:] != (r, r):
            raise ValueError(f"{fn}: x_t must be [N, 3, {r}, {r}] (use encode()), got {list(x_t.shape)}")
        n = x_t.shape[0]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.dim() == 0:
            t = t.expand(n)
        if t.shape != (n,) or t.is_floating_point() or t.is_complex():
            raise ValueError(f"{fn}: t must be an integer tensor of shape [{n}], "
                             f"got {t.dtype} {list(t.shape)}")
        if n and (int(t.min()) < 0 or int(t.max()) >= self.num_train_timesteps):
            raise ValueError(f"{fn}: t must lie in [0, {self.num_train_timesteps}), got "
                             f"[{int(t.min())}, {int(t.max())}]")
        d = self.config.cross_attention_dim
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 3 or embeddings.shape[0] != n \
                or embeddings.shape[2] != d:
            is_tensor = isinstance(embeddings, torch.Tensor)
            got = list(embeddings.shape) if is_tensor else type(embeddings).__name__
            raise ValueError(f"{fn}: embeddings must be [{n}, L, {d}] (from embed()), got {got}")
        eps = self.model(x_t.to(self.device, self.dtype), t.to(self.device),
                         embeddings.to(self.device, self.dtype))
        return eps.to(x_t.device, x_t.dtype)
