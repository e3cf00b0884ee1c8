"""Hash-grid encoding: 2**18 points, 16 levels x 2 features, 2**19 rows per level.

Cases: ``fwd``; ``fwd_bwd`` (gradients to the table, the NeRF-training case); ``fwd_bwd_dx``
(gradients to the table and to the inputs, as for analytic normals).

Impls: ``csdkit`` (compiled kernels), ``reference`` (pure PyTorch, the baseline) and
``tinycudann`` (its HashGrid with the same hyper-parameters) when it is importable on CUDA.
"""

from __future__ import annotations

import torch

from csdkit.ops import HashGridConfig, hash_grid_encode
from csdkit.ops.reference import hash_grid_encode_reference
from harness import Case


def cases(device: str, quick: bool) -> list[Case]:
    n = 2**16 if quick else 2**18
    cfg = HashGridConfig(3, n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                         per_level_scale=1.447)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=gen).to(device)
    params = ((torch.rand(cfg.n_params, 2, generator=gen) * 2 - 1) * 1e-2).to(device).requires_grad_(True)
    g = torch.randn(n, cfg.n_output_dims, generator=gen).to(device)
    x_req = x.clone().requires_grad_(True)

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn(x, params)
        return run

    def fwd_bwd(fn, inputs):
        def run():
            params.grad = None
            inputs.grad = None
            out = fn(inputs, params)
            out.backward(g)
        return run

    impls = {
        "csdkit": lambda a, p: hash_grid_encode(a, p, config=cfg),
        "reference": lambda a, p: hash_grid_encode_reference(a, p, cfg),
    }
    tcnn = _tinycudann(cfg, params) if device == "cuda" else None
    if tcnn is not None:
        impls["tinycudann"] = tcnn
    out = []
    for impl, fn in impls.items():
        slow = impl == "reference"
        out.append(Case("fwd", impl, fwd(fn), n, baseline=slow, repeats=3 if slow else 10))
        # fwd_bwd: gradients to the table (NeRF training); fwd_bwd_dx: to the table and the inputs.
        out.append(Case("fwd_bwd", impl, fwd_bwd(fn, x), n, baseline=slow, repeats=3 if slow else 10))
        out.append(Case("fwd_bwd_dx", impl, fwd_bwd(fn, x_req), n, baseline=slow, repeats=3 if slow else 10))
    return out


def _tinycudann(cfg: HashGridConfig, params: torch.Tensor):
    """tiny-cuda-nn's encoding with the same hyper-parameters (and the same table), if installed."""
    try:
        import tinycudann as tcnn
    except ImportError:
        return None
    enc = tcnn.Encoding(3, {
        "otype": "HashGrid", "n_levels": cfg.n_levels, "n_features_per_level": cfg.n_features_per_level,
        "log2_hashmap_size": cfg.log2_hashmap_size, "base_resolution": cfg.base_resolution,
        "per_level_scale": cfg.per_level_scale, "interpolation": "Linear",
    }, dtype=torch.float32)
    with torch.no_grad():
        enc.params.copy_(params.detach().reshape(-1))
    return lambda a, p: enc(a)
