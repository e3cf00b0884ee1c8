"""OccupancyGrid: the update rules (warm-up, uniform + occupied cells, EMA, threshold), levels,
invisible cells, state and validation."""

from __future__ import annotations

import math

import csdkit
import csdkit.ops as ops
import pytest
import torch


class _CountingDensity:
    """A ball of radius 0.5 with density 100 inside; records how many points were evaluated."""

    def __init__(self, radius: float = 0.5, value: float = 100.0) -> None:
        self.radius, self.value, self.calls = radius, value, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.value * (x.norm(dim=-1) < self.radius).float()


def test_defaults_follow_the_issue(device):
    grid = csdkit.OccupancyGrid(device=device)
    assert grid.resolution == (128, 128, 128) and grid.levels == 1
    assert grid.occ_threshold == 0.01 and grid.ema_decay == 0.95
    assert grid.binaries.shape == (1, 128, 128, 128) and bool(grid.binaries.all())
    assert math.isclose(grid.step_size, math.sqrt(3) * 2 * 1.0 / 512)


def test_warmup_visits_every_cell_then_samples_a_mix(device):
    grid = ops.OccupancyGrid(1.0, resolution=16, warmup_steps=2, update_every=1, device=device)
    fn = _CountingDensity()
    gen = torch.Generator().manual_seed(0)
    assert grid.update(0, fn, generator=gen)
    assert sum(fn.calls) == 16**3
    n_occupied = int(grid.binaries.sum())
    # the ball (volume pi/6 of the box's 8) is ~6.5 % of the cells; cells are judged at one random point
    assert 0.03 < n_occupied / 16**3 < 0.12
    fn.calls.clear()
    grid.update(5, fn, generator=gen)  # after warm-up: n/4 uniform + min(occupied, n/4)
    assert sum(fn.calls) == 16**3 // 4 + min(n_occupied, 16**3 // 4)


def test_update_every_and_force(device):
    grid = ops.OccupancyGrid(1.0, resolution=8, update_every=16, device=device)
    fn = _CountingDensity()
    assert not grid.update(3, fn)
    assert fn.calls == []
    assert grid.update(3, fn, force=True) and grid.update(32, fn)


def test_ema_and_threshold(device):
    grid = ops.OccupancyGrid(
        1.0, resolution=4, update_every=1, warmup_steps=100, step_size=0.01, device=device
    )
    grid.update(0, lambda x: torch.full((x.shape[0],), 3.0, device=x.device))
    torch.testing.assert_close(grid.occs, torch.full_like(grid.occs, 0.03))
    assert bool(grid.binaries.all())  # 0.03 > min(mean = 0.03, 0.01)
    grid.update(1, lambda x: torch.zeros(x.shape[0], device=x.device))
    torch.testing.assert_close(grid.occs, torch.full_like(grid.occs, 0.03 * 0.95))
    # density only in the +x half: the other half decays, the threshold is min(mean, 0.01) = 0.01
    for step in range(2, 80):
        grid.update(step, lambda x: 3.0 * (x[:, 0] > 0).float())
    assert bool(grid.binaries[0, 2:].all()) and not bool(grid.binaries[0, :2].any())


def test_grid_shrinks_to_the_object_and_marching_skips_empty_space(device):
    grid = ops.OccupancyGrid(1.0, resolution=32, device=device)
    gen = torch.Generator().manual_seed(1)
    grid.update(0, _CountingDensity(0.3), generator=gen)
    assert grid.occupied_fraction < 0.05
    o = torch.tensor([[0.0, 0.0, -3.0], [0.9, 0.9, -3.0]], device=device)
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], device=device)
    s = ops.march_rays(o, d, grid, n_samples=512)
    counts = s.packed_info[:, 1].tolist()
    assert counts[1] == 0 and 0 < counts[0] < 0.45 * 512 / math.sqrt(3)
    assert float(s.t_starts.min()) > 3.0 - 0.3 - 2 / 32 - 1e-4  # nothing before the ball's cells


def test_levels_cover_growing_boxes(device):
    grid = ops.OccupancyGrid([-1, -1, -1, 1, 1, 1], resolution=8, levels=3, device=device)
    boxes = grid.level_aabbs(torch.float64)
    torch.testing.assert_close(boxes[2].cpu(), torch.tensor([-4.0, -4, -4, 4, 4, 4], dtype=torch.float64))
    grid.binaries.zero_()
    grid.binaries[2] = True  # only the coarsest level occupied
    q = torch.tensor([[0.5, 0.5, 0.5], [1.5, 0.0, 0.0], [3.0, 3.0, 3.0], [5.0, 0.0, 0.0]], device=device)
    # a point takes the finest level containing it: (0.5, ...) is in level 0 (empty), (1.5, 0, 0) in level 1
    assert grid.query(q).tolist() == [False, False, True, False]
    fn = _CountingDensity()
    grid.update(0, fn)
    assert sum(fn.calls) == 3 * 8**3


def test_mark_invisible(device):
    grid = ops.OccupancyGrid(1.0, resolution=8, update_every=1, device=device)
    marked = grid.mark_invisible(lambda x: x[:, 2] < 0.5)  # cells with z >= 0.5 are never seen
    assert marked == 8 * 8 * 2
    fn = _CountingDensity(radius=10.0)  # dense everywhere
    grid.update(0, fn)
    assert sum(fn.calls) == 8**3 - marked
    assert not bool(grid.binaries[0, :, :, 6:].any()) and bool(grid.binaries[0, :, :, :6].all())


def test_state_dict_round_trip_and_reproducible_updates(device):
    a = ops.OccupancyGrid(1.0, resolution=8, device=device)
    b = ops.OccupancyGrid(1.0, resolution=8, device=device)
    a.update(0, _CountingDensity(), generator=torch.Generator().manual_seed(3))
    b.update(0, _CountingDensity(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.occs, b.occs)
    c = ops.OccupancyGrid(1.0, resolution=8, device=device)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.binaries, a.binaries)


def test_validation():
    with pytest.raises(ValueError, match=r"OccupancyGrid\(\): aabb must be finite with min < max"):
        ops.OccupancyGrid([0, 0, 0, 1, 1, -1])
    with pytest.raises(ValueError, match=r"resolution must be in \[1, 1024\]"):
        ops.OccupancyGrid(1.0, resolution=0)
    with pytest.raises(TypeError, match=r"resolution must be an int or 3 ints"):
        ops.OccupancyGrid(1.0, resolution=(8, 8))
    with pytest.raises(ValueError, match=r"ema_decay must be in"):
        ops.OccupancyGrid(1.0, ema_decay=1.5)
    grid = ops.OccupancyGrid(1.0, resolution=4)
    with pytest.raises(ValueError, match=r"density_fn must return densities \[64\]"):
        grid.update(0, lambda x: torch.zeros(x.shape[0], 3))
    with pytest.raises(TypeError, match=r"density_fn must be callable"):
        grid.update(0, 3.0)
    with pytest.raises(ValueError, match=r"OccupancyGrid.query\(\): x must be float32 or float64 \[\*, 3\]"):
        grid.query(torch.zeros(2, 2))
