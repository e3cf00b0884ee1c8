"""``shape_init="auto"``: the prior picks the NeRF's start shape for the prompt.

CSD keeps the topology it starts from: a ball start stays a ball (no hole is carved into it), a ring start
keeps its hole (docs/generation.md). So the start decides the genus. ``auto`` lets the prior decide which
of a few template shapes the prompt describes, in two steps that use the prior alone:

1. the prior draws ``n_samples`` images of the prompt (ancestral DDPM with classifier-free guidance,
   :func:`csdkit.guidance.sampling.sample_prior_space`): what it thinks the prompt looks like;
2. its own zero-shot classifier names their shape (:func:`csdkit.guidance.classifier.prompt_errors`): every
   sample is denoised under each template's name (``"a torus"``, ``"a cube"``, ...) with the same noise,
   and the template whose name denoises the samples best on average wins. ``"sphere"`` means the default
   ball start (``"blob"``).

The prompt's words are never parsed; the templates are known by their own names. The other direction
(rendering the templates and asking which render fits the prompt) is poorly calibrated: it favours the
templates that cover more of the frame (docs/generation.md measures both).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..geometry.primitives import BUILTIN_MESHES
from ..guidance.classifier import prompt_errors
from ..guidance.priors.base import DiffusionPrior
from ..guidance.sampling import sample_prior_space

#: The template start shapes ``auto`` chooses from (built-in mesh names; ``"sphere"`` is the ball start).
START_SHAPES: tuple[str, ...] = ("sphere", "cube", "torus", "cylinder", "cone")

_FN = "choose_start_shape"


@dataclass(frozen=True)
class StartShapeChoice:
    """The outcome of :func:`choose_start_shape`.

    Attributes:
        name: the winning template (``"torus"``).
        shape_init: the ``NerfStageConfig.shape_init`` value it stands for (``"blob"`` for the sphere,
            else ``"@<name>"``).
        errors: ``{template: mean denoising error of the samples under its name}`` (lowest wins).
        votes: ``{template: samples it labels best}``.
        seconds: time the choice took.
        samples: ``[N, 3, R, R]`` float32 in [0, 1] on CPU, the prior's samples of the prompt (a preview of
            what the choice saw; not saved by :meth:`to_dict`).
    """

    name: str
    shape_init: str
    errors: dict[str, float] = field(default_factory=dict)
    votes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    samples: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape_init": self.shape_init, "seconds": round(self.seconds, 2),
                "errors": {k: float(f"{v:.6g}") for k, v in self.errors.items()}, "votes": dict(self.votes)}


def _label(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


@torch.no_grad()
def choose_start_shape(prior: DiffusionPrior, prompt: str, *, candidates: Sequence[str] = START_SHAPES,
                       n_samples: int = 8, sample_steps: int = 50, guidance: float = 7.5,
                       t_range: tuple[float, float] = (0.1, 0.7), n_timesteps: int = 12,
                       seed: int = 0) -> StartShapeChoice:
    """The template start shape that names the prior's own samples of ``prompt`` best.

    Args:
        prior: the diffusion prior of the NeRF stage (pixel or latent space).
        prompt: the generation prompt.
        candidates: built-in mesh names (:data:`START_SHAPES` by default; at least two); each is also the
            label its samples are classified by (``"a cube"``).
        n_samples: images drawn from the prior; ``sample_steps``: DDPM steps per draw; ``guidance``: the
            classifier-free guidance scale of the draw.
        t_range: the noise levels of the classification, as fractions of ``prior.num_train_timesteps``;
            ``n_timesteps`` evenly spaced in it (the same noise for every label).
        seed: the samples and the classification noise.

    Returns:
        :class:`StartShapeChoice`.

    Cost: ``sample_steps`` denoiser calls on batches of ``2 * n_samples`` and ``n_samples * n_timesteps``
    calls on batches of ``len(candidates)`` (about 10 s for the MiniPrior on 2 CPU cores).
    """
    names = list(candidates)
    if len(names) < 2:
        raise ValueError(f"{_FN}(): candidates must name at least two shapes, got {names}")
    unknown = [n for n in names if n not in BUILTIN_MESHES]
    if unknown:
        raise ValueError(f"{_FN}(): candidates must be built-in mesh names ({', '.join(BUILTIN_MESHES)}), "
                         f"got {unknown}")
    for arg, value in (("n_samples", n_samples), ("sample_steps", sample_steps), ("n_timesteps", n_timesteps)):
        if int(value) < 1:
            raise ValueError(f"{_FN}(): {arg} must be >= 1, got {value}")
    if not (0.0 <= t_range[0] <= t_range[1] < 1.0):
        raise ValueError(f"{_FN}(): t_range must be 0 <= lo <= hi < 1, got {tuple(t_range)}")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    x = sample_prior_space(prior, [prompt] * int(n_samples), guidance, sample_steps, generator=g, fn=_FN)
    n = prior.num_train_timesteps
    timesteps = torch.linspace(t_range[0] * (n - 1), t_range[1] * (n - 1), int(n_timesteps)).round().long()
    err = prompt_errors(prior, x, [_label(name) for name in names], timesteps.tolist(), g)  # [N, K]
    mean = err.mean(0)
    best = names[int(mean.argmin())]
    votes = torch.bincount(err.argmin(1), minlength=len(names)).tolist()
    return StartShapeChoice(best, "blob" if best == "sphere" else f"@{best}",
                            {k: float(v) for k, v in zip(names, mean.tolist(), strict=True)},
                            dict(zip(names, votes, strict=True)), time.perf_counter() - t0,
                            prior.decode(x).float().cpu())


__all__ = ["START_SHAPES", "StartShapeChoice", "choose_start_shape"]
