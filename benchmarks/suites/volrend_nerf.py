"""The CSD NeRF-stage training step: a full ImplicitVolume render + backward at 64x64.

Case ``nerf_step_64``: one 64x64 view of a freshly initialized :class:`csdkit.ImplicitVolume`
(default 16-level hash grid, Gaussian density blob: the state every CSD run starts from), rendered
by :class:`csdkit.VolumeRenderer` with 512 samples per ray and an occupancy grid (after its first
warm-up sweep), lambertian shading with finite-difference normals, plus the orientation and
sparsity regularizers, then ``backward()``. It is the per-step cost of CSD's NeRF stage minus the
diffusion prior.

Impls: ``csdkit`` (compiled hash-grid and volume-rendering kernels) and ``reference`` (the same
step with ``CSDKIT_FORCE_REFERENCE=1``: every kernel replaced by its pure-PyTorch twin), the
baseline, timed in the same run. The jitter seed is fixed, so every call renders the same samples.
"""

from __future__ import annotations

import contextlib
import os

import torch

import csdkit
from harness import Case


@contextlib.contextmanager
def force_reference():
    old = os.environ.get("CSDKIT_FORCE_REFERENCE")
    os.environ["CSDKIT_FORCE_REFERENCE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["CSDKIT_FORCE_REFERENCE"]
        else:
            os.environ["CSDKIT_FORCE_REFERENCE"] = old


def cases(device: str, quick: bool) -> list[Case]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    res = 64
    volume = csdkit.ImplicitVolume(1.0, device=device, encoding=csdkit.HashGridEncoding(3, device=device))
    # Chunks of 1024 rays bound the temporaries of the reference hash grid (the graph still spans all).
    renderer = csdkit.VolumeRenderer(res, n_samples_per_ray=512, grid="auto", chunk_rays=1024)
    renderer.update_grid(volume, 0, generator=gen)  # warm-up sweep: empty space is skipped from here on
    cams = csdkit.Cameras.sample(1, generator=gen, device=device)
    lights = csdkit.PointLights.sample(cams, generator=gen)
    regularizers = csdkit.VolumeRegularizers()

    def step() -> None:
        out = renderer.render(volume, cams, shading="lambertian", lights=lights, generator=0)
        loss = out["rgb"].mean() + regularizers(out, step=1000)["total"]
        loss.backward()

    def reference_step() -> None:
        with force_reference():
            step()

    n = res * res
    # The reference step takes minutes on a CPU: time it once (twice without --quick), no warm-up.
    return [
        Case("nerf_step_64", "csdkit", step, n, repeats=3 if quick else 5, warmup=1, setup=volume.zero_grad),
        Case("nerf_step_64", "reference", reference_step, n, baseline=True, repeats=1 if quick else 2,
             warmup=0, setup=volume.zero_grad),
    ]
