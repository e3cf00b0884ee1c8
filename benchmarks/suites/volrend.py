"""Volume-rendering kernels: compositing forward+backward, and marching + compositing.

Cases (``csdkit`` = compiled kernels, ``reference`` = the pure-PyTorch twins in
``csdkit.ops.reference``, the baseline timed in the same run; ``nerfacc`` when importable on CUDA):

* ``composite_fwd_bwd``: 4096 rays x 512 samples. Weights from densities, then rgb, opacity and
  depth accumulated along the rays; backward to densities and colours.
* ``march_composite``: 4096 rays marched through a 128^3 occupancy grid holding a ball (512 steps
  per box diagonal), densities of an analytic field at the samples, compositing forward+backward.

The full ImplicitVolume render + backward at 64x64 is the ``volrend_nerf`` suite.
"""

from __future__ import annotations

import importlib.util
import math

import csdkit.ops as ops
import torch
from csdkit.ops import reference as ref
from harness import Case


def _composite_inputs(n_rays: int, n_samples: int, device: str):
    g = torch.Generator().manual_seed(0)
    counts = torch.full((n_rays,), n_samples, dtype=torch.long)
    info = torch.stack([torch.arange(n_rays) * n_samples, counts], 1).to(device)
    s = n_rays * n_samples
    step = 2 * math.sqrt(3) / n_samples
    t_starts = (torch.arange(n_samples, dtype=torch.float32) * step).repeat(n_rays).to(device)
    t_ends = t_starts + step
    # a soft shell: most rays terminate partway, a few pass through (early stop exercised)
    sigmas = (20.0 * torch.rand(s, generator=g)).to(device).requires_grad_()
    rgbs = torch.rand(s, 3, generator=g).to(device).requires_grad_()
    return t_starts, t_ends, sigmas, rgbs, info


def _render_csdkit(t_starts, t_ends, sigmas, rgbs, info, ray_indices=None):
    weights, _, _ = ops.render_weight_from_density(t_starts, t_ends, sigmas, info)
    rgb = ops.accumulate_along_rays(weights, rgbs, info)
    opacity = ops.accumulate_along_rays(weights, None, info)
    depth = ops.accumulate_along_rays(weights, ((t_starts + t_ends) / 2)[:, None], info)
    return rgb, opacity, depth


def _render_reference(t_starts, t_ends, sigmas, rgbs, info, ray_indices):
    n_rays = info.shape[0]
    weights, _, _ = ref.render_weight_from_density_reference(t_starts, t_ends, sigmas, info)
    rgb = ref.accumulate_along_rays_reference(weights, rgbs, ray_indices, n_rays)
    opacity = ref.accumulate_along_rays_reference(weights, None, ray_indices, n_rays)
    depth = ref.accumulate_along_rays_reference(
        weights, ((t_starts + t_ends) / 2)[:, None], ray_indices, n_rays
    )
    return rgb, opacity, depth


def _fwd_bwd(render, inputs, ray_indices):
    def run():
        t_starts, t_ends, sigmas, rgbs, info = inputs
        sigmas.grad = rgbs.grad = None
        rgb, opacity, depth = render(t_starts, t_ends, sigmas, rgbs, info, ray_indices)
        (rgb.sum() + opacity.sum() + 0.1 * depth.sum()).backward()

    return run


def _density_field(x: torch.Tensor) -> torch.Tensor:
    return 30.0 * torch.exp(-((x.norm(dim=-1) / 0.6) ** 8))  # a soft ball of radius ~0.6


def _march_composite(impl: str, rays_o, rays_d, grid, n_samples: int):
    march = ops.march_rays if impl == "csdkit" else None
    render = _render_csdkit if impl == "csdkit" else _render_reference

    def run():
        if march is not None:
            s = march(rays_o, rays_d, grid, n_samples=n_samples)
        else:
            step = math.sqrt(12) / n_samples
            s = ops.RaySamples(
                *ref.march_rays_reference(rays_o, rays_d, grid.binaries, grid.level_aabbs(), step)
            )
        mid = (s.t_starts + s.t_ends) / 2
        x = rays_o[s.ray_indices] + mid[:, None] * rays_d[s.ray_indices]
        sigmas = _density_field(x).requires_grad_()
        rgbs = (0.5 + 0.5 * x).clamp(0, 1).requires_grad_()
        rgb, opacity, depth = render(s.t_starts, s.t_ends, sigmas, rgbs, s.packed_info, s.ray_indices)
        (rgb.sum() + opacity.sum() + 0.1 * depth.sum()).backward()

    return run


def cases(device: str, quick: bool) -> list[Case]:
    n_rays = 1024 if quick else 4096
    n_samples = 512
    out: list[Case] = []

    inputs = _composite_inputs(n_rays, n_samples, device)
    ray_indices = ref.compositing.ray_indices_from_packed(inputs[4], n_rays * n_samples)
    n = n_rays * n_samples
    out.append(
        Case(
            "composite_fwd_bwd",
            "reference",
            _fwd_bwd(_render_reference, inputs, ray_indices),
            n,
            baseline=True,
            repeats=5,
        )
    )
    out.append(
        Case("composite_fwd_bwd", "csdkit", _fwd_bwd(_render_csdkit, inputs, ray_indices), n, repeats=10)
    )
    if device == "cuda" and importlib.util.find_spec("nerfacc") is not None:
        import nerfacc  # noqa: PLC0415

        def _render_nerfacc(t_starts, t_ends, sigmas, rgbs, info, ray_idx):
            weights, _, _ = nerfacc.render_weight_from_density(
                t_starts, t_ends, sigmas, ray_indices=ray_idx, n_rays=n_rays
            )
            rgb = nerfacc.accumulate_along_rays(weights, rgbs, ray_idx, n_rays)
            opacity = nerfacc.accumulate_along_rays(weights, None, ray_idx, n_rays)
            depth = nerfacc.accumulate_along_rays(
                weights, ((t_starts + t_ends) / 2)[:, None], ray_idx, n_rays
            )
            return rgb, opacity, depth

        out.append(Case("composite_fwd_bwd", "nerfacc", _fwd_bwd(_render_nerfacc, inputs, ray_indices), n))

    # marching + compositing: rays from a camera ring towards the unit box, grid holding a ball
    g = torch.Generator().manual_seed(1)
    origin = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=-1) * 3.0
    target = 0.8 * (2 * torch.rand(n_rays, 3, generator=g) - 1)
    rays_o = origin.to(device)
    rays_d = torch.nn.functional.normalize(target - origin, dim=-1).to(device)
    grid = ops.OccupancyGrid(1.0, resolution=128, device=device)
    grid.update(0, _density_field, generator=torch.Generator().manual_seed(0))
    out.append(
        Case(
            "march_composite",
            "reference",
            _march_composite("reference", rays_o, rays_d, grid, n_samples),
            n_rays,
            baseline=True,
            repeats=2,
            warmup=0,
        )
    )  # the reference march is slow
    out.append(
        Case(
            "march_composite",
            "csdkit",
            _march_composite("csdkit", rays_o, rays_d, grid, n_samples),
            n_rays,
            repeats=10,
        )
    )
    return out
