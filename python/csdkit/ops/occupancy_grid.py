"""``OccupancyGrid``: which cells of the scene box may contain matter, for empty-space skipping.

The grid keeps, per cell, an exponential moving average of an *occupancy* value: the density
at a random point of the cell times the marching step size (a first-order estimate of the opacity
``1 - exp(-sigma * dt)`` of one marching step, so that the threshold does not depend on the
scene's scale). A cell is occupied when its value exceeds ``min(mean of all values, occ_threshold)``.

Update rule (:meth:`OccupancyGrid.update`, called every training step; it acts every
``update_every`` steps):

* warm-up (``step < warmup_steps``): every cell is visited;
* afterwards, per level, ``n_cells / 4`` uniformly random cells plus up to ``n_cells / 4`` random
  occupied cells;
* visited cells: ``occ = max(occ * ema_decay, density(x) * step_size)`` with ``x`` uniform in the
  cell; then the binary grid is re-thresholded. Cells marked invisible (value -1, see
  :meth:`OccupancyGrid.mark_invisible`) are never visited and never occupied.

Levels: level 0 covers ``aabb``; level ``l`` covers the box of the same centre scaled by ``2**l``
(same resolution, so cells twice as large), for unbounded-ish backgrounds. Ray marching uses, at
each point, the finest level containing it.

The update runs as a handful of vectorized torch ops on the grid's device (its cost is the
density evaluations); marching through the grid is the compiled kernel of
:func:`csdkit.ops.march_rays`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_float, check_int, check_tensor
from .ray_aabb import as_aabb
from .reference.ray_marching import occupancy_lookup_reference

__all__ = ["OccupancyGrid"]

_FN = "OccupancyGrid"


def _resolution3(value) -> tuple[int, int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, value)
    if not (isinstance(value, Sequence) and len(value) == 3):
        raise TypeError(f"{_FN}: resolution must be an int or 3 ints, got {value!r}")
    return tuple(check_int(_FN, "resolution", v, min_value=1, max_value=1024) for v in value)  # type: ignore


class OccupancyGrid(nn.Module):
    """Multi-level binary occupancy grid with an EMA occupancy field.

    Args:
        aabb: the scene box (level 0): a radius ``r`` for ``[-r, r]^3``, 6 numbers or a tensor ``[6]``
            ``(xmin, ymin, zmin, xmax, ymax, zmax)``.
        resolution: cells per axis, an int or 3 ints (default 128).
        levels: number of levels; level ``l`` covers the box scaled by ``2**l`` about its centre.
        occ_threshold: upper bound of the occupancy threshold (default 0.01).
        ema_decay: decay of the moving average (default 0.95).
        warmup_steps: steps during which every cell is visited (default 256).
        update_every: :meth:`update` acts when ``step % update_every == 0`` (default 16).
        step_size: the marching step the occupancy values refer to; default
            ``diagonal(aabb) / n_samples`` (``sqrt(3) * 2 * radius / n_samples`` for a cube), the
            default step of :func:`csdkit.ops.march_rays`.
        n_samples: samples per box diagonal that define the default ``step_size`` (default 512).
        device: where the state lives (default cpu; ``.to()`` moves it like any module).

    Buffers (saved in ``state_dict``):
        occs: ``[levels, rx, ry, rz]`` float32, the EMA occupancy (-1 for invisible cells).
        binaries: ``[levels, rx, ry, rz]`` bool, the occupied cells. A new grid is all occupied.
    """

    occs: torch.Tensor
    binaries: torch.Tensor

    def __init__(
        self,
        aabb: float | Sequence[float] | torch.Tensor = 1.0,
        resolution: int | Sequence[int] = 128,
        levels: int = 1,
        *,
        occ_threshold: float = 0.01,
        ema_decay: float = 0.95,
        warmup_steps: int = 256,
        update_every: int = 16,
        step_size: float | None = None,
        n_samples: int = 512,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.aabb = as_aabb(_FN, aabb)
        self.resolution = _resolution3(resolution)
        self.levels = check_int(_FN, "levels", levels, min_value=1, max_value=16)
        self.occ_threshold = check_float(_FN, "occ_threshold", occ_threshold, min_value=0.0)
        self.ema_decay = check_float(_FN, "ema_decay", ema_decay, min_value=0.0, max_value=1.0)
        self.warmup_steps = check_int(_FN, "warmup_steps", warmup_steps, min_value=0)
        self.update_every = check_int(_FN, "update_every", update_every, min_value=1)
        check_int(_FN, "n_samples", n_samples, min_value=1)
        diag = math.sqrt(sum((self.aabb[i + 3] - self.aabb[i]) ** 2 for i in range(3)))
        self.step_size = diag / n_samples if step_size is None else check_float(
            _FN, "step_size", step_size, min_value=1e-12)
        shape = (self.levels, *self.resolution)
        self.register_buffer("occs", torch.zeros(shape, dtype=torch.float32, device=device))
        self.register_buffer("binaries", torch.ones(shape, dtype=torch.bool, device=device))

    # ---- geometry -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.binaries.device

    @property
    def n_cells(self) -> int:
        """Cells per level."""
        return self.resolution[0] * self.resolution[1] * self.resolution[2]

    def level_aabbs(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """``[levels, 6]`` boxes of the levels, fine to coarse (computed in float64, then cast)."""
        box = torch.tensor(self.aabb, dtype=torch.float64)
        lo, hi = box[:3], box[3:]
        center, half = (lo + hi) / 2, (hi - lo) / 2
        boxes = [torch.cat([center - half * 2**lvl, center + half * 2**lvl]) for lvl in range(self.levels)]
        return torch.stack(boxes).to(dtype=dtype, device=device if device is not None else self.device)

    def cell_centers(self, level: int = 0) -> torch.Tensor:
        """``[rx * ry * rz, 3]`` float32 world positions of the cell centres of ``level`` (x-major order)."""
        return self._cell_points(level, torch.arange(self.n_cells, device=self.device), jitter=False)

    def _cell_points(self, level: int, cells: torch.Tensor, jitter: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        rx, ry, rz = self.resolution
        ijk = torch.stack([cells // (ry * rz), (cells // rz) % ry, cells % rz], dim=1).to(torch.float32)
        if not jitter:
            offset = torch.full_like(ijk, 0.5)
        else:
            gen_device = generator.device if generator is not None else self.device
            offset = torch.rand(ijk.shape, generator=generator, device=gen_device).to(self.device)
        res = torch.tensor(self.resolution, dtype=torch.float32, device=self.device)
        box = self.level_aabbs(torch.float32)[level]
        return box[:3] + (ijk + offset) / res * (box[3:] - box[:3])

    # ---- queries --------------------------------------------------------------------------------
    @property
    def occupied_fraction(self) -> float:
        """Fraction of occupied cells over all levels."""
        return float(self.binaries.float().mean())

    @torch.no_grad()
    def query(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: whether the points ``x [N, 3]`` (float32/float64, grid's device) lie in an
        occupied cell of the finest level containing them (False outside every level)."""
        check_tensor("OccupancyGrid.query", "x", x, dtype=(torch.float32, torch.float64), shape=(None, 3),
                     device=self.device)
        return occupancy_lookup_reference(x, self.binaries, self.level_aabbs(x.dtype))

    # ---- update ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update(
        self,
        step: int,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        *,
        force: bool = False,
        generator: torch.Generator | None = None,
        chunk_size: int = 1 << 18,
    ) -> bool:
        """Refresh the grid from ``density_fn`` following the rules in the module docstring.

        Args:
            step: the global training step (acts when ``step % update_every == 0`` or ``force``).
            density_fn: maps points ``[N, 3]`` float32 (grid's device, world space) to densities
                ``[N]`` or ``[N, 1]`` (>= 0). Called under ``torch.no_grad()``, in chunks of ``chunk_size``.
            force: update regardless of ``step``.
            generator: random source for the visited cells and the points in them (default: torch's
                global generator), for reproducible grids.

        Returns:
            True when the grid was updated.
        """
        fn = "OccupancyGrid.update"
        check_int(fn, "step", step, min_value=0)
        if not callable(density_fn):
            raise TypeError(f"{fn}(): density_fn must be callable (points [N, 3] -> densities [N]), "
                            f"got {type(density_fn).__name__}")
        if not force and step % self.update_every != 0:
            return False
        gen_device = generator.device if generator is not None else self.device
        n = self.n_cells
        occs = self.occs.view(self.levels, n)
        for level in range(self.levels):
            if step < self.warmup_steps:
                cells = torch.arange(n, device=self.device)
            else:
                uniform = torch.randint(n, (n // 4,), generator=generator, device=gen_device).to(self.device)
                occupied = torch.nonzero(self.binaries[level].reshape(-1)).flatten()
                if occupied.numel() > n // 4:
                    pick = torch.randint(occupied.numel(), (n // 4,), generator=generator, device=gen_device)
                    occupied = occupied[pick.to(self.device)]
                cells = torch.cat([uniform, occupied])
            cells = cells[occs[level, cells] >= 0]  # never visit invisible cells
            if cells.numel() == 0:
                continue
            x = self._cell_points(level, cells, jitter=True, generator=generator)
            occ = torch.cat([self._density(density_fn, x[i:i + chunk_size], fn)
                             for i in range(0, x.shape[0], chunk_size)])
            occ = occ * self.step_size
            row = occs[level]
            row.index_put_((cells,), row[cells] * self.ema_decay)
            row.scatter_reduce_(0, cells, occ, reduce="amax")
        valid = self.occs >= 0
        mean = self.occs[valid].mean() if bool(valid.any()) else self.occs.new_zeros(())
        threshold = torch.clamp(mean, max=self.occ_threshold)
        self.binaries.copy_(self.occs > threshold)
        return True

    @staticmethod
    def _density(density_fn, x: torch.Tensor, fn: str) -> torch.Tensor:
        d = density_fn(x)
        if not isinstance(d, torch.Tensor) or d.shape not in ((x.shape[0],), (x.shape[0], 1)):
            got = f"{d.dtype} {list(d.shape)}" if isinstance(d, torch.Tensor) else type(d).__name__
            raise ValueError(f"{fn}(): density_fn must return densities [{x.shape[0]}] or [{x.shape[0]}, 1] "
                             f"for points [{x.shape[0]}, 3], got {got}")
        return d.reshape(-1).to(torch.float32)

    @torch.no_grad()
    def mark_invisible(self, visible_fn: Callable[[torch.Tensor], torch.Tensor]) -> int:
        """Mark cells whose centres ``visible_fn`` rejects as never occupied (value -1).

        ``visible_fn`` maps cell centres ``[N, 3]`` float32 to ``[N]`` bool (e.g. "inside at least
        one training camera's frustum"). Returns the number of cells marked.
        """
        marked = 0
        occs = self.occs.view(self.levels, -1)
        for level in range(self.levels):
            vis = visible_fn(self.cell_centers(level))
            if not isinstance(vis, torch.Tensor) or vis.shape != (self.n_cells,):
                raise ValueError(f"OccupancyGrid.mark_invisible(): visible_fn must return bool "
                                 f"[{self.n_cells}], got {type(vis).__name__} {getattr(vis, 'shape', '')}")
            hide = ~vis.to(torch.bool)
            occs[level][hide] = -1.0
            marked += int(hide.sum())
        self.binaries &= self.occs >= 0
        return marked

    def extra_repr(self) -> str:
        return (f"aabb={self.aabb}, resolution={self.resolution}, levels={self.levels}, "
                f"occ_threshold={self.occ_threshold}, ema_decay={self.ema_decay}, "
                f"warmup_steps={self.warmup_steps}, update_every={self.update_every}, "
                f"step_size={self.step_size:.5g}")
