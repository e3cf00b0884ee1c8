"""``shape_init="auto"``: the prior picks the NeRF's start shape for the prompt.

CSD keeps the topology it starts from: a ball start stays a ball (no hole is carved into it), a ring start
keeps its hole (docs/generation.md). So the start decides the genus. ``auto`` asks the prior which of a
few template shapes the prompt describes best, with the prior's own implicit classifier
(:func:`csdkit.guidance.classifier.denoising_advantage`):

1. every candidate (built-in meshes: sphere, cube, torus, cylinder, cone) is scaled to a bounding
   sphere of radius ``radius`` and rendered textureless (white, lambertian under a headlight) from the
   same ``n_views`` random cameras, framed like object-centric training images (the object fills about
   70-90% of the frame's width; smaller renders are not told apart, docs/generation.md);
2. each candidate's renders are scored by the advantage of the prompt over the empty prompt, with the same
   noise for every candidate (paired);
3. the best-scoring candidate wins; ``"sphere"`` means the default ball start (``"blob"``).

Textureless renders keep the colour out of the choice: the prompt's colour words cost every candidate
the same. The choice is the prior's; the prompt's words are never parsed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..geometry.mesh import Mesh
from ..geometry.primitives import BUILTIN_MESHES, builtin_mesh
from ..guidance.classifier import denoising_advantage, prompt_and_empty
from ..guidance.priors.base import DiffusionPrior
from ..render.cameras import Cameras
from ..render.mesh_renderer import MeshRenderer

#: The template start shapes ``auto`` chooses from (built-in mesh names; ``"sphere"`` is the ball start).
START_SHAPES: tuple[str, ...] = ("sphere", "cube", "torus", "cylinder", "cone")

_FN = "choose_start_shape"


@dataclass(frozen=True)
class StartShapeChoice:
    """The outcome of :func:`choose_start_shape`.

    Attributes:
        name: the winning candidate (``"torus"``).
        shape_init: the ``NerfStageConfig.shape_init`` value it stands for (``"blob"`` for the sphere,
            else ``"@<name>"``).
        scores: ``{candidate: advantage}`` (mean over views; higher fits the prompt better).
        seconds: time the choice took.
        colour: the surface colour the candidates were rendered in (:func:`fit_colour`).
    """

    name: str
    shape_init: str
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    colour: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "shape_init": self.shape_init, "seconds": round(self.seconds, 2),
                "colour": list(self.colour),
                "scores": {k: float(f"{v:.4g}") for k, v in self.scores.items()}}


def _scaled(mesh: Mesh, radius: float) -> Mesh:
    v = mesh.vertices.detach().to(torch.float32)
    v = v - (v.min(0).values + v.max(0).values) / 2
    return Mesh(v * (radius / float(v.norm(dim=-1).max())), mesh.faces)


@torch.no_grad()
def choose_start_shape(prior: DiffusionPrior, prompt: str, *, candidates: Sequence[str] = START_SHAPES,
                       n_views: int = 8, n_timesteps: int = 8, radius: float = 1.0, distance: float = 3.4,
                       fov: float = 40.0, elevation_range: tuple[float, float] = (-10.0, 60.0),
                       colour_steps: int = 40, seed: int = 0,
                       device: torch.device | str | None = None) -> StartShapeChoice:
    """The candidate start shape whose textureless renders fit ``prompt`` best under ``prior``.

    Args:
        prior: the diffusion prior of the NeRF stage.
        prompt: the generation prompt.
        candidates: built-in mesh names (:data:`START_SHAPES` by default; at least two).
        n_views: renders per candidate (the same cameras for all); ``n_timesteps``: noise levels per render.
        radius, distance, fov, elevation_range: the framing (bounding-sphere radius, camera distance,
            vertical field of view in degrees, elevation band) - by default the MiniPrior's training camera.
        colour_steps: steps of :func:`fit_colour` (the prompt's colour, fitted on the first candidate's
            renders; every candidate is then rendered in it, so the colour words cost all of them alike).
        seed: the cameras and the noise draws.
        device: where the renders run (default: the prior's device).

    Returns:
        :class:`StartShapeChoice`.

    Cost: ``len(candidates) * n_timesteps`` denoiser calls on batches of ``2 * n_views`` (about 5 s for the
    MiniPrior on 2 CPU cores).
    """
    names = list(candidates)
    if len(names) < 2:
        raise ValueError(f"{_FN}(): candidates must name at least two shapes, got {names}")
    unknown = [n for n in names if n not in BUILTIN_MESHES]
    if unknown:
        raise ValueError(f"{_FN}(): candidates must be built-in mesh names ({', '.join(BUILTIN_MESHES)}), "
                         f"got {unknown}")
    if n_views < 1:
        raise ValueError(f"{_FN}(): n_views must be >= 1, got {n_views}")
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else prior.device
    g = torch.Generator().manual_seed(seed)
    cams = Cameras.sample(n_views, elevation_range=elevation_range, distance_range=(distance, distance),
                          fov_range=(fov, fov), generator=g).to(dev)
    renderer = MeshRenderer(prior.resolution)
    shaded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in names:
        mesh = _scaled(builtin_mesh(name), radius).to(dev)
        out = renderer.render(mesh, cams, shading="textureless", background=0.0, ambient=0.5, diffuse=0.5)
        shaded[name] = (out["rgb"].permute(0, 3, 1, 2), out["mask"].permute(0, 3, 1, 2))
    colour = fit_colour(prior, prompt, *shaded[names[0]], steps=colour_steps, seed=seed)
    scores: dict[str, float] = {}
    for name, (shade, mask) in shaded.items():
        adv = denoising_advantage(prior, _coloured(shade, mask, colour), prompt, n_timesteps=n_timesteps,
                                  seed=seed + 1)
        scores[name] = float(adv.mean())
    best = max(scores, key=scores.get)
    return StartShapeChoice(best, "blob" if best == "sphere" else f"@{best}", scores, time.perf_counter() - t0,
                            tuple(round(float(c), 3) for c in colour))


def _coloured(shade: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor, background: float = 0.5) -> torch.Tensor:
    """``[B, 3, H, W]``: textureless shading ``shade`` tinted by ``colour [3]`` over a grey background."""
    return shade * colour.view(1, 3, 1, 1).to(shade) + (1.0 - mask) * background


def fit_colour(prior: DiffusionPrior, prompt: str, shade: torch.Tensor, mask: torch.Tensor, *, steps: int = 40,
               lr: float = 0.1, seed: int = 0) -> torch.Tensor:
    """The prompt's surface colour ``[3]`` in [0, 1] (CPU), fitted by CSD on one uniform albedo.

    ``shade [B, 3, H, W]`` (a textureless render over black) and ``mask [B, 1, H, W]``: the renders are
    ``colour * shade`` over grey; ``steps`` Adam steps of the classifier score ``eps_y - eps_0`` on the
    colour alone (``t`` uniform in [0.02, 0.98]). Starts from grey.
    """
    g = torch.Generator().manual_seed(seed + 2)
    logit = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([logit], lr=lr)
    b = shade.shape[0]
    emb = prompt_and_empty(prior, prompt, b)
    n = prior.num_train_timesteps
    for _ in range(steps):
        with torch.enable_grad():
            x = prior.encode(_coloured(shade, mask, torch.sigmoid(logit).to(prior.device)))
            t = (0.02 + 0.96 * torch.rand(b, generator=g)).mul(n - 1).round().long().to(x.device)
            noise = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
            with torch.no_grad():
                x_t = prior.add_noise(x.detach().to(prior.dtype), noise.to(prior.dtype), t)
                eps = prior.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]), emb).float()
                grad = eps[:b] - eps[b:]
                grad = grad / grad.norm().clamp_min(1e-12)
            opt.zero_grad()
            (x.float() * grad).sum().backward()
        opt.step()
    return torch.sigmoid(logit.detach())


__all__ = ["START_SHAPES", "StartShapeChoice", "choose_start_shape"]
