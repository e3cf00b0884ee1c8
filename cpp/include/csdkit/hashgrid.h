// csdkit/hashgrid.h -- multiresolution hash-grid encoding (Mueller et al. 2022), with the exact
// semantics of tiny-cuda-nn's GridEncoding (hash type), so parameters trained there load here.
//
// Level l (0-based):
//   scale_l      = base_resolution * per_level_scale**l - 1      (computed as exp2(l*log2(s))*b - 1)
//   resolution_l = ceil(scale_l) + 1
//   size_l       = min(next_multiple_of_8(resolution_l**d), 2**log2_hashmap_size)
//   position     = scale_l * x + 0.5; corner = floor(position); frac = position - corner
//   index        = dense (sum corner_i * resolution_l**i) if resolution_l**d <= size_l,
//                  else xor_i(corner_i * prime_i) with primes (1, 2654435761, 805459861), in uint32;
//                  then index % size_l.
// The parameters of all levels are one flat array [sum_l size_l, n_features]; level l starts at
// row offsets[l]. The output is [N, n_levels * n_features], level-major.
// Inputs are clamped to [0, 1]; the gradient w.r.t. a clamped coordinate is zero.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "csdkit/common.h"

namespace csdkit {
namespace hashgrid {

constexpr int kMaxLevels = 32;
constexpr int kMaxDims = 3;
constexpr int kMaxFeatures = 8;

enum Interpolation : int { kLinear = 0, kSmoothstep = 1 };

// Options of the encoding (the only thing a caller sets).
struct Options {
  int n_dims = 3;              // input dimensions: 2 or 3
  int n_levels = 16;           // number of resolution levels, 1..kMaxLevels
  int n_features = 2;          // features per level: 1, 2, 4 or 8
  int log2_hashmap_size = 19;  // max rows per level = 2**log2_hashmap_size (<= 30)
  int base_resolution = 16;    // resolution of the coarsest level (>= 2)
  float per_level_scale = 1.447f;  // growth factor between levels (>= 1)
  int interpolation = kLinear;     // kLinear or kSmoothstep
};

// Per-level constants derived from Options by make_layout().
struct Layout {
  int n_dims = 3;
  int n_levels = 0;
  int n_features = 2;
  int interpolation = kLinear;
  uint32_t offsets[kMaxLevels + 1] = {};  // first row of each level; offsets[n_levels] = n_params
  uint32_t resolution[kMaxLevels] = {};
  float scale[kMaxLevels] = {};
};

// Validates `opt` (throws std::invalid_argument) and computes the per-level layout.
Layout make_layout(const Options& opt);

// ---- per-element math, shared by the CPU and CUDA kernels --------------------------------------

CSDKIT_HD float level_scale(int level, float per_level_scale, int base_resolution) {
  return exp2f(level * log2f(per_level_scale)) * base_resolution - 1.0f;
}

CSDKIT_HD uint32_t level_resolution(float scale) { return static_cast<uint32_t>(ceilf(scale)) + 1u; }

// Both comparisons are always evaluated, so the compiler can make it branch-free (and vectorize the
// CPU loops); NaN passes through unchanged.
template <typename T>
CSDKIT_HD T clamp01(T v) {
  const T lo = v < T(0) ? T(0) : v;
  return lo > T(1) ? T(1) : lo;
}

// Splits scale*x+0.5 into an integer corner and the interpolation weight along one axis.
// `x` must already be clamped to [0, 1], so pos >= 0.5 and truncation toward zero is the floor
// (a plain conversion: no libm call on CPUs without SSE4.1, and it vectorizes).
// `w` is the interpolation weight of the upper corner, `dw` its derivative w.r.t. x.
template <typename T>
CSDKIT_HD void axis_weight(T x, float scale, int interpolation, uint32_t* corner, T* w, T* dw) {
  const T pos = T(scale) * x + T(0.5);
  const int cell = static_cast<int>(pos);
  const T fl = T(cell);
  *corner = static_cast<uint32_t>(cell);
  const T f = pos - fl;
  if (interpolation == kSmoothstep) {
    *w = f * f * (T(3) - T(2) * f);
    *dw = T(6) * f * (T(1) - f) * T(scale);
  } else {
    *w = f;
    *dw = T(scale);
  }
}

// Row of the parameter table (relative to the level's offset) for a grid vertex; equals
// tiny-cuda-nn's `index % size` without an integer division (branch-free, so it vectorizes):
// * a hashed level always has size 2**log2_hashmap_size, a power of two (make_layout checks it);
// * a dense index is below 2 * size: corners are at most `resolution` per axis (one past the grid
//   for x = 1), so index <= r + r**2 (+ r**3) < 2 r**D <= 2 size for r >= 2.
// The index is assembled from one term per axis (so a kernel can compute each axis's two terms
// once per point and combine them for all corners):
//   hashed: xor_d coord_d * prime_d;   dense: sum_d coord_d * resolution**d   (uint32 wrap-around).
CSDKIT_HD uint32_t axis_index_term(uint32_t coord, int d, uint32_t resolution, bool hashed) {
  if (hashed) return coord * (d == 0 ? 1u : (d == 1 ? 2654435761u : 805459861u));
  uint32_t stride = 1;
  for (int e = 0; e < d; ++e) stride *= resolution;
  return coord * stride;
}
CSDKIT_HD uint32_t combine_index_terms(uint32_t a, uint32_t b, bool hashed) { return hashed ? (a ^ b) : (a + b); }
CSDKIT_HD uint32_t wrap_index(uint32_t index, uint32_t size, bool hashed) {
  if (hashed) return index & (size - 1);
  return index < size ? index : index - size;
}

template <int D>
CSDKIT_HD uint32_t grid_index(const uint32_t* corner, uint32_t resolution, uint32_t size, bool hashed) {
  uint32_t index = axis_index_term(corner[0], 0, resolution, hashed);
  CSDKIT_UNROLL
  for (int d = 1; d < D; ++d) index = combine_index_terms(index, axis_index_term(corner[d], d, resolution, hashed), hashed);
  return wrap_index(index, size, hashed);
}

// Interpolation weight of corner c (bit d set = upper along axis d) from the upper-corner weights
// w[D] of the axes.
template <typename T, int D>
CSDKIT_HD T corner_weight(const T* w, int c) {
  T v = T(1);
  CSDKIT_UNROLL
  for (int d = 0; d < D; ++d) v *= ((c >> d) & 1) ? w[d] : (T(1) - w[d]);
  return v;
}

// d corner_weight(c) / d x_d, with dw[D] the derivatives of the axis weights.
template <typename T, int D>
CSDKIT_HD T corner_weight_grad(const T* w, const T* dw, int c, int d) {
  T v = ((c >> d) & 1) ? dw[d] : -dw[d];
  CSDKIT_UNROLL
  for (int e = 0; e < D; ++e)
    if (e != d) v *= ((c >> e) & 1) ? w[e] : (T(1) - w[e]);
  return v;
}

// Whether level `l` is hashed: its dense grid (resolution**D vertices) does not fit its table.
template <int D>
CSDKIT_HD bool level_is_hashed(uint32_t resolution, uint32_t size) {
  uint64_t dense = 1;
  CSDKIT_UNROLL
  for (int d = 0; d < D; ++d) dense *= resolution;
  return dense > size;
}

// One level's cell for one point: base corner, weights of the upper corners, their derivatives,
// and the level's table geometry.
template <typename T, int D>
struct Cell {
  uint32_t base[D];
  T w[D];
  T dw[D];
  uint32_t resolution, size;
  bool hashed;

  CSDKIT_HD Cell(const Layout& L, int l, const T* x) {
    resolution = L.resolution[l];
    size = L.offsets[l + 1] - L.offsets[l];
    hashed = level_is_hashed<D>(resolution, size);
  CSDKIT_UNROLL
    for (int d = 0; d < D; ++d) axis_weight<T>(clamp01(x[d]), L.scale[l], L.interpolation, &base[d], &w[d], &dw[d]);
  }

  // Table row of corner c (bit d set = upper along axis d).
  CSDKIT_HD uint32_t row(int c) const {
    uint32_t corner[D];
  CSDKIT_UNROLL
    for (int d = 0; d < D; ++d) corner[d] = base[d] + ((c >> d) & 1);
    return grid_index<D>(corner, resolution, size, hashed);
  }

  // Interpolation weight of corner c.
  CSDKIT_HD T weight(int c) const { return corner_weight<T, D>(w, c); }

  // d weight(c) / d x_d.
  CSDKIT_HD T weight_grad(int c, int d) const { return corner_weight_grad<T, D>(w, dw, c, d); }
};

// Forward at one level for one point: out_level[f] = sum_corners weight * params[row, f].
template <typename T, int D, int F>
CSDKIT_HD void level_forward(const Layout& L, int l, const T* xi, const T* params, T* out_level) {
  const Cell<T, D> cell(L, l, xi);
  const T* table = params + int64_t(L.offsets[l]) * F;
  T acc[F];
  CSDKIT_UNROLL
  for (int f = 0; f < F; ++f) acc[f] = T(0);
  CSDKIT_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    const T weight = cell.weight(c);
    const T* row = table + int64_t(cell.row(c)) * F;
  CSDKIT_UNROLL
    for (int f = 0; f < F; ++f) acc[f] += weight * row[f];
  }
  CSDKIT_UNROLL
  for (int f = 0; f < F; ++f) out_level[f] = acc[f];
}

// Scatter of one point's output gradient g[F] at level l into d_params, via add(ptr, value)
// (a plain += on the CPU, atomicAdd on the GPU).
template <typename T, int D, int F, typename Add>
CSDKIT_HD void level_backward_params(const Layout& L, int l, const T* xi, const T* g, T* d_params, Add add) {
  const Cell<T, D> cell(L, l, xi);
  T* grad = d_params + int64_t(L.offsets[l]) * F;
  CSDKIT_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    const T weight = cell.weight(c);
    T* row = grad + int64_t(cell.row(c)) * F;
  CSDKIT_UNROLL
    for (int f = 0; f < F; ++f) add(row + f, weight * g[f]);
  }
}

// Adds d(g . out_level)/d(x) at level l to dx[D]. With v_c = g . params[row(c)] the value seen at
// corner c: d/dx_d = sum_c v_c * d weight(c) / d x_d, so every corner is fetched once.
template <typename T, int D, int F>
CSDKIT_HD void level_backward_input(const Layout& L, int l, const T* xi, const T* params, const T* g, T* dx) {
  const Cell<T, D> cell(L, l, xi);
  const T* table = params + int64_t(L.offsets[l]) * F;
  CSDKIT_UNROLL
  for (int c = 0; c < (1 << D); ++c) {
    const T* row = table + int64_t(cell.row(c)) * F;
    T v = T(0);
  CSDKIT_UNROLL
    for (int f = 0; f < F; ++f) v += g[f] * row[f];
  CSDKIT_UNROLL
    for (int d = 0; d < D; ++d) dx[d] += v * cell.weight_grad(c, d);
  }
}

// The input gradient is zero for coordinates that were clamped into [0, 1].
template <typename T>
CSDKIT_HD T mask_clamped(T x, T grad) {
  return (x < T(0) || x > T(1)) ? T(0) : grad;
}

// Calls fn(std::integral_constant<int, D>{}, std::integral_constant<int, F>{}) for the layout's
// runtime (n_dims, n_features): the kernels are compiled for every supported combination.
template <typename Fn>
void dispatch_dims_features(const Layout& L, Fn&& fn) {
  auto with_f = [&](auto d) {
    switch (L.n_features) {
      case 1: fn(d, std::integral_constant<int, 1>{}); break;
      case 2: fn(d, std::integral_constant<int, 2>{}); break;
      case 4: fn(d, std::integral_constant<int, 4>{}); break;
      case 8: fn(d, std::integral_constant<int, 8>{}); break;
      default: throw std::invalid_argument("hashgrid: n_features must be 1, 2, 4 or 8");
    }
  };
  if (L.n_dims == 2)
    with_f(std::integral_constant<int, 2>{});
  else if (L.n_dims == 3)
    with_f(std::integral_constant<int, 3>{});
  else
    throw std::invalid_argument("hashgrid: n_dims must be 2 or 3");
}

// ---- kernels ------------------------------------------------------------------------------------
// Pointers are contiguous row-major arrays of T (float or double):
//   x [n, n_dims], params [n_params, n_features], out/d_out [n, n_levels * n_features],
//   d_params [n_params, n_features] (accumulated into (+=) when `accumulate`, else overwritten),
//   d_x [n, n_dims] (overwritten).
// Backward: pass nullptr for a gradient that is not needed. `accumulate = false` saves the caller a
// separate zero-fill of d_params (the CPU kernel zeroes each level's rows while they are cache-hot).

template <typename T>
void encode_forward(const Layout& L, int64_t n, const T* x, const T* params, T* out, Device dev = {});

template <typename T>
void encode_backward(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out,
                     T* d_params, T* d_x, Device dev = {}, bool accumulate = true);

// CPU and CUDA implementations (encode_forward/backward dispatch on dev).
template <typename T>
void encode_forward_cpu(const Layout& L, int64_t n, const T* x, const T* params, T* out);
template <typename T>
void encode_backward_cpu(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out,
                         T* d_params, T* d_x, bool accumulate);
template <typename T>
void encode_forward_cuda(const Layout& L, int64_t n, const T* x, const T* params, T* out, Device dev);
template <typename T>
void encode_backward_cuda(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out,
                          T* d_params, T* d_x, Device dev, bool accumulate);

}  // namespace hashgrid
}  // namespace csdkit
