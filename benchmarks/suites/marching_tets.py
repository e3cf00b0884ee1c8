"""Marching tetrahedra: the compiled kernel against the pure-PyTorch reference (and kaolin when importable).

Cases (``n`` = tets of the grid; ``csdkit`` = compiled kernels via ``csdkit.ops.marching_tetrahedra``,
``reference`` = ``csdkit.ops.reference.marching_tetrahedra_reference``, the baseline timed in the same
run; ``kaolin`` = ``kaolin.ops.conversions.marching_tetrahedra`` when installed):

* ``fwd_R{R}``: extraction only, on ``tet_grid(R)`` with a bumpy sphere SDF (a DMTet-like surface).
* ``fwd_bwd_R{R}``: extraction + backward of a loss on the vertices into ``sdf`` and the deformed
  grid vertices (what one DMTet training step pays for the isosurface).
* ``grid_isosurface_R{R}``: ``csdkit.geometry.marching_tetrahedra`` on an ``(R + 1)^3`` value grid
  (what ``ImplicitVolume.isosurface`` runs): the straddling cells' tets through the op, against the
  same function on the reference (``CSDKIT_FORCE_REFERENCE=1``).
"""

from __future__ import annotations

import importlib.util
import os

import torch

from csdkit.geometry import marching_tetrahedra as grid_marching_tetrahedra
from csdkit.geometry import tet_grid
from csdkit.ops import marching_tetrahedra
from csdkit.ops.reference import marching_tetrahedra_reference
from harness import Case


def _problem(resolution: int, device: str):
    grid, tets = tet_grid(resolution)
    g = torch.Generator().manual_seed(0)
    x = grid
    bump = 0.05 * torch.sin(7 * x[:, 0]) * torch.sin(5 * x[:, 1]) * torch.sin(6 * x[:, 2])
    sdf = x.norm(dim=1) - 0.6 + bump + 0.002 * torch.randn(x.shape[0], generator=g)
    deform = 0.3 / resolution * torch.randn(grid.shape, generator=g)
    return grid.to(device), tets.to(device), sdf.to(device), deform.to(device)


def _fwd(fn, grid, tets, sdf):
    def run():
        with torch.no_grad():
            return fn(grid, tets, sdf)

    return run


def _fwd_bwd(fn, grid, tets, sdf, deform):
    sdf = sdf.clone().requires_grad_(True)
    deform = deform.clone().requires_grad_(True)

    def run():
        sdf.grad = deform.grad = None
        verts, faces = fn(grid + deform, tets, sdf)
        (verts.square().sum()).backward()

    return run


def _kaolin(grid, tets, sdf):
    import kaolin  # noqa: PLC0415

    return kaolin.ops.conversions.marching_tetrahedra(grid[None], tets, sdf[None])


def cases(device: str, quick: bool) -> list[Case]:
    out: list[Case] = []
    have_kaolin = importlib.util.find_spec("kaolin") is not None
    resolutions = [32] if quick else [64, 128]
    for r in resolutions:
        grid, tets, sdf, deform = _problem(r, device)
        n = int(tets.shape[0])
        out.append(Case(f"fwd_R{r}", "reference", _fwd(marching_tetrahedra_reference, grid, tets, sdf), n,
                        baseline=True, repeats=5))
        out.append(Case(f"fwd_R{r}", "csdkit", _fwd(marching_tetrahedra, grid, tets, sdf), n, repeats=10))
        if have_kaolin:
            out.append(Case(f"fwd_R{r}", "kaolin", _fwd(_kaolin, grid, tets, sdf), n, repeats=10))
        out.append(Case(f"fwd_bwd_R{r}", "reference",
                        _fwd_bwd(marching_tetrahedra_reference, grid, tets, sdf, deform), n, baseline=True,
                        repeats=5))
        out.append(Case(f"fwd_bwd_R{r}", "csdkit", _fwd_bwd(marching_tetrahedra, grid, tets, sdf, deform), n,
                        repeats=10))
        if have_kaolin:
            out.append(Case(f"fwd_bwd_R{r}", "kaolin", _fwd_bwd(_kaolin_first, grid, tets, sdf, deform), n,
                            repeats=10))

    # The grid isosurface (ImplicitVolume.isosurface): straddling cells found with torch, their tets
    # through the op; the reference impl is the same function with CSDKIT_FORCE_REFERENCE=1.
    r = 64 if quick else 128
    lin = torch.linspace(-1, 1, r + 1)
    x = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1)
    values = (1.0 - x.norm(dim=-1) + 0.05 * torch.sin(7 * x[..., 0])).to(device)  # inside: values > 0.4
    out.append(Case(f"grid_isosurface_R{r}", "reference", _forced_reference(lambda: grid_marching_tetrahedra(
        values, 0.4)), 6 * r**3, baseline=True, repeats=5))
    out.append(Case(f"grid_isosurface_R{r}", "csdkit", lambda: grid_marching_tetrahedra(values, 0.4), 6 * r**3,
                    repeats=5))
    return out


def _forced_reference(fn):
    def run():
        old = os.environ.get("CSDKIT_FORCE_REFERENCE")
        os.environ["CSDKIT_FORCE_REFERENCE"] = "1"
        try:
            return fn()
        finally:
            if old is None:
                del os.environ["CSDKIT_FORCE_REFERENCE"]
            else:
                os.environ["CSDKIT_FORCE_REFERENCE"] = old

    return run


def _kaolin_first(grid, tets, sdf):
    verts, faces = _kaolin(grid, tets, sdf)
    return verts[0], faces[0]
