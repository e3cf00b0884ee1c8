"""End-to-end proof: an ImplicitVolume fitted to analytic renders of a coloured sphere.

Photometric loss against ground truth rendered analytically (ray / sphere intersection, colour a
smooth function of the hit point) from 12 views; held-out views must reach PSNR > 25 dB, the
occupancy grid must shrink to the object, and the extracted isosurface must be the sphere.
"""

from __future__ import annotations

import math

import pytest
import torch

import csdkit
from csdkit.render import VolumeRenderer

SPHERE_RADIUS = 0.45
SPHERE_CENTRE = torch.tensor([0.08, -0.05, 0.05])  # off-centre: the initial blob is not the answer


def sphere_colour(p: torch.Tensor) -> torch.Tensor:
    return 0.5 + 0.4 * torch.stack([torch.sin(4 * p[..., 0]), torch.sin(4 * p[..., 1] + 1),
                                    torch.cos(4 * p[..., 2])], dim=-1)


def render_sphere(cams: csdkit.Cameras, res: int) -> torch.Tensor:
    """Ground truth ``[B, res, res, 3]`` on a white background, analytically."""
    o, d = cams.rays(res, res)
    o = o - SPHERE_CENTRE
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - SPHERE_RADIUS**2)
    t = -b - disc.clamp_min(0).sqrt()
    hit_point = o + t[..., None] * d + SPHERE_CENTRE
    return torch.where((disc > 0)[..., None], sphere_colour(hit_point), torch.ones_like(hit_point))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10.0 * math.log10(float((a - b).square().mean()))


@pytest.fixture
def single_thread():
    """One thread for torch and the kernels: deterministic reductions, and no thread thrash on a
    shared CI machine (multi-threaded small ops can be 10x slower when the cores are busy)."""
    torch_threads, kernel_threads = torch.get_num_threads(), csdkit.build_info()["cpu_threads"]
    torch.set_num_threads(1)
    csdkit.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    csdkit.set_num_threads(max(kernel_threads, 1))


def test_fit_coloured_sphere(single_thread):
    torch.manual_seed(0)
    res, steps, views_per_step = 32, 200, 2
    elevations, azimuths = torch.tensor([15.0, -10.0, 40.0]).repeat(4), torch.arange(12) * 30.0
    train = csdkit.Cameras.from_spherical(elevations, azimuths, 2.5, fov_y=40.0)
    held_out = csdkit.Cameras.from_spherical([20.0, 0.0, 30.0], [15.0, 135.0, 255.0], 2.5, fov_y=40.0)
    gt_train, gt_held_out = render_sphere(train, res), render_sphere(held_out, res)

    encoding = csdkit.HashGridEncoding(3, n_levels=8, n_features_per_level=2, log2_hashmap_size=14,
                                       base_resolution=8, per_level_scale=1.4)
    volume = csdkit.ImplicitVolume(1.0, encoding, hidden_dim=32, density_bias="linear_blob", blob_std=0.6)
    # A 32^3 grid over the volume's box, its occupancy measured per step of the renderer's march.
    grid = csdkit.OccupancyGrid(1.0, 32, update_every=4, n_samples=96)
    renderer = VolumeRenderer(res, n_samples_per_ray=96, grid=grid)
    assert grid.step_size == pytest.approx(renderer.step_size(1.0))
    assert grid.occupied_fraction == 1.0  # a fresh grid skips nothing
    groups = volume.parameter_groups(lr_encoding=3e-2, lr_network=1e-2)
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        start = psnr(renderer.render(volume, held_out)["rgb"], gt_held_out)
    for step in range(steps):
        renderer.update_grid(volume, step, generator=gen)
        idx = torch.randperm(len(train), generator=gen)[:views_per_step]
        out = renderer.render(volume, train[idx], generator=gen)
        loss = (out["rgb"] - gt_train[idx]).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        final = psnr(renderer.render(volume, held_out)["rgb"], gt_held_out)
    print(f"held-out PSNR {start:.2f} dB -> {final:.2f} dB after {steps} steps; "
          f"occupied cells {grid.occupied_fraction:.3f}")
    assert final > 25.0

    # The occupancy grid shrank to the object: cells clear of the sphere are empty, cells inside
    # it are kept.
    dist = (grid.cell_centers() - SPHERE_CENTRE).norm(dim=-1)
    half_diagonal = math.sqrt(3) / 32
    occupied = grid.binaries[0].reshape(-1)
    empty_cells = dist > SPHERE_RADIUS + half_diagonal
    assert float((~occupied[empty_cells]).float().mean()) > 0.9
    assert bool(occupied[dist < SPHERE_RADIUS - half_diagonal].all())
    object_fraction = float((dist < SPHERE_RADIUS).float().mean())
    assert grid.occupied_fraction < 3 * object_fraction

    # The density's level set is the sphere.
    surface = volume.isosurface(threshold=10.0, resolution=48)
    radii = (surface.vertices - SPHERE_CENTRE).norm(dim=-1)
    assert surface.faces.shape[0] > 500
    assert abs(float(radii.median()) - SPHERE_RADIUS) < 0.05
