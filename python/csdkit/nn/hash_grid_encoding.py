"""``HashGridEncoding``: a torch module owning the hash-grid parameter table."""

from __future__ import annotations

import torch
from torch import nn

from ..ops.hash_grid import hash_grid_encode
from ..ops.hash_grid_config import HashGridConfig


class HashGridEncoding(nn.Module):
    """Multiresolution hash-grid encoding with learnable features (tiny-cuda-nn semantics).

    Args:
        n_input_dims: 2 or 3.
        n_levels: number of resolution levels.
        n_features_per_level: 1, 2, 4 or 8.
        log2_hashmap_size: each level holds at most ``2**log2_hashmap_size`` rows.
        base_resolution: resolution of the coarsest level.
        per_level_scale: resolution growth factor between levels.
        interpolation: ``"linear"`` or ``"smoothstep"``.
        dtype, device: of the parameter table (float32 by default).

    Attributes:
        params: ``nn.Parameter [n_params, n_features_per_level]``, initialised uniform in ±1e-4.
        level_offsets: first row of each level in ``params`` (and the total as the last entry).

    ``forward(x [N, n_input_dims] in [0, 1]) -> [N, n_levels * n_features_per_level]``. A
    ``params`` table trained with tiny-cuda-nn's ``HashGrid`` (same hyper-parameters, float32,
    reshaped to ``[n_params, F]``) loads with ``load_state_dict({"params": ...})``.
    """

    def __init__(
        self,
        n_input_dims: int = 3,
        n_levels: int = 16,
        n_features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        per_level_scale: float = 1.447,
        interpolation: str = "linear",
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.config = HashGridConfig(n_input_dims, n_levels, n_features_per_level, log2_hashmap_size,
                                     base_resolution, per_level_scale, interpolation)
        table = torch.empty(self.config.n_params, n_features_per_level, dtype=dtype, device=device)
        self.params = nn.Parameter(table.uniform_(-1e-4, 1e-4))

    @property
    def level_offsets(self) -> tuple[int, ...]:
        return self.config.level_offsets

    @property
    def n_output_dims(self) -> int:
        return self.config.n_output_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hash_grid_encode(x, self.params, config=self.config)

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_input_dims={c.n_input_dims}, n_levels={c.n_levels}, n_features_per_level="
                f"{c.n_features_per_level}, log2_hashmap_size={c.log2_hashmap_size}, base_resolution="
                f"{c.base_resolution}, per_level_scale={c.per_level_scale}, interpolation={c.interpolation!r}, "
                f"n_params={c.n_params}")
