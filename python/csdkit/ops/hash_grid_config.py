"""Configuration and parameter layout of the multiresolution hash-grid encoding."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .. import _native
from ._checks import check_choice, check_float, check_int

INTERPOLATIONS = ("linear", "smoothstep")


@dataclasses.dataclass(frozen=True)
class HashGridConfig:
    """Hyper-parameters of a hash-grid encoding (tiny-cuda-nn's ``HashGrid`` semantics).

    Level ``l`` has scale ``base_resolution * per_level_scale**l - 1``, resolution
    ``ceil(scale) + 1`` and ``min(next_multiple_of_8(resolution**d), 2**log2_hashmap_size)`` rows;
    see ``cpp/include/csdkit/hashgrid.h`` for the full definition.
    """

    n_input_dims: int = 3
    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 1.447
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        fn = "HashGridConfig"
        check_int(fn, "n_input_dims", self.n_input_dims, min_value=2, max_value=3)
        check_int(fn, "n_levels", self.n_levels, min_value=1, max_value=32)
        check_choice(fn, "n_features_per_level", self.n_features_per_level, (1, 2, 4, 8))
        check_int(fn, "log2_hashmap_size", self.log2_hashmap_size, min_value=1, max_value=30)
        check_int(fn, "base_resolution", self.base_resolution, min_value=2)
        check_float(fn, "per_level_scale", self.per_level_scale, min_value=1.0)
        check_choice(fn, "interpolation", self.interpolation, INTERPOLATIONS)
        object.__setattr__(self, "per_level_scale", float(self.per_level_scale))

    # ---- derived layout -------------------------------------------------------------------------
    @property
    def level_offsets(self) -> tuple[int, ...]:
        """First parameter row of each level, plus the total row count as the last entry."""
        return _layout(self)[0]

    @property
    def level_resolutions(self) -> tuple[int, ...]:
        return _layout(self)[1]

    @property
    def level_scales(self) -> tuple[float, ...]:
        return _layout(self)[2]

    @property
    def n_params(self) -> int:
        """Rows of the flat parameter table ``[n_params, n_features_per_level]``."""
        return self.level_offsets[-1]

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.n_features_per_level

    def native_options(self):
        """The matching ``csdkit._C.HashGridOptions``."""
        opt = _native.native().HashGridOptions()
        opt.n_dims = self.n_input_dims
        opt.n_levels = self.n_levels
        opt.n_features = self.n_features_per_level
        opt.log2_hashmap_size = self.log2_hashmap_size
        opt.base_resolution = self.base_resolution
        opt.per_level_scale = self.per_level_scale
        opt.interpolation = INTERPOLATIONS.index(self.interpolation)
        return opt


def layout_numpy(cfg: HashGridConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]]:
    """The layout computed in float32 with numpy, mirroring ``hashgrid::make_layout`` in C++."""
    offsets, resolutions, scales = [0], [], []
    log2s = np.log2(np.float32(cfg.per_level_scale))
    for level in range(cfg.n_levels):
        scale = np.float32(np.exp2(np.float32(level) * log2s) * np.float32(cfg.base_resolution) - np.float32(1))
        res = int(np.ceil(scale)) + 1
        size = min(res**cfg.n_input_dims, 2**31 - 1)
        size = min((size + 7) // 8 * 8, 2**cfg.log2_hashmap_size)
        offsets.append(offsets[-1] + size)
        resolutions.append(res)
        scales.append(float(scale))
    return tuple(offsets), tuple(resolutions), tuple(scales)


@functools.lru_cache(maxsize=256)
def _layout(cfg: HashGridConfig) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]]:
    if _native.available():
        d = _native.native().hashgrid_layout(cfg.native_options())
        return tuple(d["offsets"]), tuple(d["resolution"]), tuple(d["scale"])
    return layout_numpy(cfg)
