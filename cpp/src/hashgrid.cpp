// Hash-grid encoding: layout, dispatch and the CPU kernels.
#include "csdkit/hashgrid.h"

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "csdkit/memory.h"
#include "csdkit/parallel.h"

namespace csdkit {
namespace hashgrid {

Layout make_layout(const Options& opt) {
  const char* fn = "hashgrid::make_layout";
  check_arg(opt.n_dims == 2 || opt.n_dims == 3, fn, "n_dims must be 2 or 3, got " + std::to_string(opt.n_dims));
  check_arg(opt.n_levels >= 1 && opt.n_levels <= kMaxLevels, fn,
            "n_levels must be in [1, " + std::to_string(kMaxLevels) + "], got " + std::to_string(opt.n_levels));
  check_arg(opt.n_features == 1 || opt.n_features == 2 || opt.n_features == 4 || opt.n_features == 8, fn,
            "n_features must be 1, 2, 4 or 8, got " + std::to_string(opt.n_features));
  check_arg(opt.log2_hashmap_size >= 1 && opt.log2_hashmap_size <= 30, fn,
            "log2_hashmap_size must be in [1, 30], got " + std::to_string(opt.log2_hashmap_size));
  check_arg(opt.base_resolution >= 2, fn, "base_resolution must be >= 2, got " + std::to_string(opt.base_resolution));
  check_arg(opt.per_level_scale >= 1.0f, fn,
            "per_level_scale must be >= 1, got " + std::to_string(opt.per_level_scale));
  check_arg(opt.interpolation == kLinear || opt.interpolation == kSmoothstep, fn,
            "interpolation must be 0 (linear) or 1 (smoothstep), got " + std::to_string(opt.interpolation));

  Layout L;
  L.n_dims = opt.n_dims;
  L.n_levels = opt.n_levels;
  L.n_features = opt.n_features;
  L.interpolation = opt.interpolation;
  const uint64_t max_size = uint64_t(1) << opt.log2_hashmap_size;
  uint64_t offset = 0;
  for (int l = 0; l < opt.n_levels; ++l) {
    const float scale = level_scale(l, opt.per_level_scale, opt.base_resolution);
    const uint32_t res = level_resolution(scale);
    // Dense size, capped like tiny-cuda-nn (uint32 max / 2) before rounding up to a multiple of 8.
    double dense = 1.0;
    for (int d = 0; d < opt.n_dims; ++d) dense *= res;
    uint64_t size = dense > double(UINT32_MAX / 2) ? uint64_t(UINT32_MAX / 2) : uint64_t(dense);
    size = (size + 7) / 8 * 8;
    if (size > max_size) size = max_size;
    // A hashed level's table is 2**log2_hashmap_size rows (a power of two): grid_index masks.
    check_arg(!(dense > double(size)) || (size & (size - 1)) == 0, fn, "internal: hashed level size not a power of 2");
    L.scale[l] = scale;
    L.resolution[l] = res;
    L.offsets[l] = static_cast<uint32_t>(offset);
    offset += size;
    check_arg(offset < (uint64_t(1) << 31), fn, "the parameter table exceeds 2**31 rows");
  }
  L.offsets[opt.n_levels] = static_cast<uint32_t>(offset);
  return L;
}

// CPU loop structure (the per-element math is hashgrid.h's axis_weight, grid_index and
// corner_weight[_grad], the same functions the CUDA kernels run):
// * level-major inside each thread's range of points, so one level's table (at most
//   2**log2_hashmap_size rows, 4 MiB at the defaults) stays cache-resident while all points visit it;
// * points in blocks of kBlock, structure-of-arrays: first every corner's row and weight for the
//   block (branch-free loops over points, which the compiler vectorizes), then the table accesses,
//   which are independent and overlap in flight;
// * per-level values are staged level-major ([n_levels][n][F], contiguous per level): writing the
//   [n, n_levels * F] output (or reading d_out) in place would touch every cache line of it once
//   per level. The forward transposes the staging into `out` once; the backward transposes d_out
//   into the staging once.
constexpr int kBlock = 32;


template <typename T, int D>
struct Block {
  static constexpr int C = 1 << D;
  alignas(64) uint32_t rows[C][kBlock];
  alignas(64) T weights[C][kBlock];
  alignas(64) T weight_grads[C][D][kBlock];
};

// The per-point loops of a block, one instantiation per axis d and per corner c, so that the bit
// tests (c >> d) & 1 and the axis's prime are compile-time constants and each loop over the block's
// points is branch-free and vectorizes.
template <typename T, int D, bool Hashed, int Interp, bool Grads>
struct BlockLoader {
  alignas(64) uint32_t term[D][2][kBlock];  // axis_index_term of the lower / upper corner
  alignas(64) T w[D][kBlock];
  alignas(64) T dw[D][kBlock];

  template <int d>
  CSDKIT_FORCE_INLINE void axis(const Layout& L, int l, const T* x, int nb) {
    const float scale = L.scale[l];
    const uint32_t resolution = L.resolution[l];
    alignas(64) T xd[kBlock];  // de-interleaved first, so the loop below reads contiguously
    for (int k = 0; k < nb; ++k) xd[k] = x[k * D + d];
    for (int k = 0; k < nb; ++k) {
      uint32_t base;
      axis_weight<T>(clamp01(xd[k]), scale, Interp, &base, &w[d][k], &dw[d][k]);
      term[d][0][k] = axis_index_term(base, d, resolution, Hashed);
      term[d][1][k] = axis_index_term(base + 1, d, resolution, Hashed);
    }
  }

  template <int c>
  CSDKIT_FORCE_INLINE void corner(uint32_t size, int nb, Block<T, D>& b) const {
    for (int k = 0; k < nb; ++k) {
      T wk[D], dwk[D];
      uint32_t index = term[0][c & 1][k];
      for (int d = 0; d < D; ++d) {
        if (d > 0) index = combine_index_terms(index, term[d][(c >> d) & 1][k], Hashed);
        wk[d] = w[d][k];
        dwk[d] = dw[d][k];
      }
      b.rows[c][k] = wrap_index(index, size, Hashed);
      b.weights[c][k] = corner_weight<T, D>(wk, c);
      if (Grads)
        for (int d = 0; d < D; ++d) b.weight_grads[c][d][k] = corner_weight_grad<T, D>(wk, dwk, c, d);
    }
  }

  template <int... Ds, int... Cs>
  CSDKIT_FORCE_INLINE void run(const Layout& L, int l, const T* x, int nb, Block<T, D>& b, std::integer_sequence<int, Ds...>,
                  std::integer_sequence<int, Cs...>) {
    (axis<Ds>(L, l, x, nb), ...);
    const uint32_t size = L.offsets[l + 1] - L.offsets[l];
    (corner<Cs>(size, nb, b), ...);
  }
};

template <typename T, int D, bool Hashed, int Interp, bool Grads>
CSDKIT_CPU_CLONES void load_block_impl(const Layout& L, int l, const T* x, int nb, Block<T, D>& b) {
  BlockLoader<T, D, Hashed, Interp, Grads> loader;
  loader.run(L, l, x, nb, b, std::make_integer_sequence<int, D>{}, std::make_integer_sequence<int, (1 << D)>{});
}

// Calls fn(std::true_type{}) or fn(std::false_type{}): a runtime flag as a compile-time constant.
template <typename Fn>
void with_bool(bool value, Fn&& fn) {
  if (value)
    fn(std::true_type{});
  else
    fn(std::false_type{});
}

// Rows, weights (and weight gradients if `grads`) of points x[0 .. nb) at level l.
template <typename T, int D>
void load_block(const Layout& L, int l, const T* x, int nb, bool grads, Block<T, D>& b) {
  const bool hashed = level_is_hashed<D>(L.resolution[l], L.offsets[l + 1] - L.offsets[l]);
  const bool smooth = L.interpolation == kSmoothstep;
  with_bool(hashed, [&](auto h) {
    with_bool(smooth, [&](auto sm) {
      with_bool(grads, [&](auto g) {
        constexpr int interp = decltype(sm)::value ? kSmoothstep : kLinear;
        load_block_impl<T, D, decltype(h)::value, interp, decltype(g)::value>(L, l, x, nb, b);
      });
    });
  });
}

// Calls body(i0, nb, block) for the blocks of points [begin, end) at level l. (Software prefetching
// of the next block's rows was measured here and gained nothing: the out-of-order core already
// overlaps the independent accesses of a block.)
template <typename T, int D, typename Body>
void for_each_block(const Layout& L, int l, const T* x, int64_t begin, int64_t end, bool grads, Body&& body) {
  Block<T, D> blk;
  for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
    const int nb = int(std::min<int64_t>(kBlock, end - i0));
    load_block<T, D>(L, l, x + i0 * D, nb, grads, blk);
    body(i0, nb, static_cast<const Block<T, D>&>(blk));
  }
}

// stage[l][i][F] <-> rows[i][l][F] for points [begin, end); n points per level in `stage`.
template <typename T, int F>
void stage_to_rows(const T* stage, T* rows, int n_levels, int64_t n, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i)
    for (int l = 0; l < n_levels; ++l)
      for (int j = 0; j < F; ++j) rows[(i * n_levels + l) * F + j] = stage[(int64_t(l) * n + i) * F + j];
}
template <typename T, int F>
void rows_to_stage(const T* rows, T* stage, int n_levels, int64_t n, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i)
    for (int l = 0; l < n_levels; ++l)
      for (int j = 0; j < F; ++j) stage[(int64_t(l) * n + i) * F + j] = rows[(i * n_levels + l) * F + j];
}

template <typename T>
void encode_forward_cpu(const Layout& L, int64_t n, const T* x, const T* params, T* out) {
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value, C = 1 << D;
    Scratch<T> stage(size_t(n) * L.n_levels * F);
    advise_huge_pages(out, sizeof(T) * size_t(n) * L.n_levels * F);
    parallel_for(n, 1024, [&](int64_t begin, int64_t end) {
      for (int l = 0; l < L.n_levels; ++l) {
        const T* table = params + int64_t(L.offsets[l]) * F;
        T* level_out = stage.data() + int64_t(l) * n * F;
        for_each_block<T, D>(L, l, x, begin, end, false, [&](int64_t i0, int nb, const Block<T, D>& blk) {
          for (int k = 0; k < nb; ++k) {
            T acc[F] = {};
            for (int c = 0; c < C; ++c) {
              const T* row = table + int64_t(blk.rows[c][k]) * F;
              for (int j = 0; j < F; ++j) acc[j] += blk.weights[c][k] * row[j];
            }
            for (int j = 0; j < F; ++j) level_out[(i0 + k) * F + j] = acc[j];
          }
        });
      }
      stage_to_rows<T, F>(stage.data(), out, L.n_levels, n, begin, end);
    });
  });
}

// Adds, for the block's points, the input gradient of level l to dx (D values per point):
// d/dx_d = sum_c (g . params[row_c]) * d weight_c / d x_d.
template <typename T, int D, int F>
inline void add_input_grad(const Block<T, D>& blk, int64_t i0, int nb, const T* table, const T* g, T* dx) {
  constexpr int C = 1 << D;
  for (int k = 0; k < nb; ++k) {
    T gk[F], acc[D] = {};  // locals: the compiler cannot keep values behind possibly aliasing pointers
    for (int j = 0; j < F; ++j) gk[j] = g[(i0 + k) * F + j];
    for (int c = 0; c < C; ++c) {
      const T* row = table + int64_t(blk.rows[c][k]) * F;
      T v = T(0);
      for (int j = 0; j < F; ++j) v += gk[j] * row[j];
      for (int e = 0; e < D; ++e) acc[e] += v * blk.weight_grads[c][e][k];
    }
    for (int e = 0; e < D; ++e) dx[(i0 + k) * D + e] += acc[e];
  }
}

template <typename T>
void encode_backward_cpu(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out,
                         T* d_params, T* d_x, bool accumulate) {
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value, C = 1 << D;
    Scratch<T> stage(size_t(n) * L.n_levels * F);  // d_out, level-major
    parallel_for(n, 4096, [&](int64_t b, int64_t e) { rows_to_stage<T, F>(d_out, stage.data(), L.n_levels, n, b, e); });
    if (d_params) {
      if (!accumulate) advise_huge_pages(d_params, sizeof(T) * size_t(L.offsets[L.n_levels]) * F);
      // Race-free and deterministic: each task owns whole levels, i.e. disjoint rows of d_params.
      // Levels are dealt round-robin (task k takes k, k + tasks, ...) so cheap coarse levels and
      // expensive hashed fine levels are spread evenly over the threads. Without `accumulate` the
      // owner zeroes its rows right before scattering into them, while they are cache-hot.
      // When d_x is asked for too, the same pass adds each level's input gradient into a per-task
      // partial sum (task 0 writes d_x itself), added up in task order afterwards.
      const int tasks = std::max(1, std::min(num_threads(), L.n_levels));
      std::vector<ScratchArray<T>> partial;
      if (d_x)
        for (int t = 1; t < tasks; ++t) partial.emplace_back(size_t(n) * D);
      parallel_for(tasks, 1, [&](int64_t tb, int64_t te) {
        for (int64_t task = tb; task < te; ++task) {
          T* dx = d_x ? (task == 0 ? d_x : partial[task - 1].data()) : nullptr;
          if (dx) std::fill(dx, dx + n * D, T(0));
          for (int l = int(task); l < L.n_levels; l += tasks) {
            T* grad = d_params + int64_t(L.offsets[l]) * F;
            const T* table = params + int64_t(L.offsets[l]) * F;
            if (!accumulate) std::fill(grad, d_params + int64_t(L.offsets[l + 1]) * F, T(0));
            const T* g = stage.data() + int64_t(l) * n * F;
            for_each_block<T, D>(L, l, x, 0, n, dx != nullptr, [&](int64_t i0, int nb, const Block<T, D>& blk) {
              for (int k = 0; k < nb; ++k) {
                T gk[F];
                for (int j = 0; j < F; ++j) gk[j] = g[(i0 + k) * F + j];
                for (int c = 0; c < C; ++c) {
                  T* row = grad + int64_t(blk.rows[c][k]) * F;
                  for (int j = 0; j < F; ++j) row[j] += blk.weights[c][k] * gk[j];
                }
              }
              if (dx) add_input_grad<T, D, F>(blk, i0, nb, table, g, dx);
            });
          }
        }
      });
      if (d_x)
        parallel_for(n * D, 4096, [&](int64_t b, int64_t e) {
          for (int64_t k = b; k < e; ++k) {
            T v = d_x[k];
            for (auto& p : partial) v += p.data()[k];
            d_x[k] = mask_clamped(x[k], v);
          }
        });
      return;
    }
    if (d_x) {
      parallel_for(n, 1024, [&](int64_t begin, int64_t end) {
        std::fill(d_x + begin * D, d_x + end * D, T(0));
        for (int l = 0; l < L.n_levels; ++l) {
          const T* table = params + int64_t(L.offsets[l]) * F;
          const T* g = stage.data() + int64_t(l) * n * F;
          for_each_block<T, D>(L, l, x, begin, end, true, [&](int64_t i0, int nb, const Block<T, D>& blk) {
            add_input_grad<T, D, F>(blk, i0, nb, table, g, d_x);
          });
        }
        for (int64_t k = begin * D; k < end * D; ++k) d_x[k] = mask_clamped(x[k], d_x[k]);
      });
    }
  });
}

static void check_common(const Layout& L, int64_t n, const void* x, const void* params, const char* fn) {
  check_arg(L.n_levels >= 1, fn, "layout is empty (build it with make_layout)");
  check_arg(n >= 0, fn, "n must be >= 0, got " + std::to_string(n));
  check_arg(n == 0 || (x != nullptr && params != nullptr), fn, "x and params must not be null");
}

template <typename T>
void encode_forward(const Layout& L, int64_t n, const T* x, const T* params, T* out, Device dev) {
  check_common(L, n, x, params, "hashgrid::encode_forward");
  if (n == 0) return;
  if (dev.is_cuda())
    encode_forward_cuda<T>(L, n, x, params, out, dev);
  else
    encode_forward_cpu<T>(L, n, x, params, out);
}

template <typename T>
void encode_backward(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out, T* d_params,
                     T* d_x, Device dev, bool accumulate) {
  check_common(L, n, x, params, "hashgrid::encode_backward");
  if (dev.is_cuda())
    encode_backward_cuda<T>(L, n, x, params, d_out, d_params, d_x, dev, accumulate);
  else
    encode_backward_cpu<T>(L, n, x, params, d_out, d_params, d_x, accumulate);
}

#define CSDKIT_INSTANTIATE(T)                                                                          \
  template void encode_forward<T>(const Layout&, int64_t, const T*, const T*, T*, Device);             \
  template void encode_backward<T>(const Layout&, int64_t, const T*, const T*, const T*, T*, T*, Device, bool); \
  template void encode_forward_cpu<T>(const Layout&, int64_t, const T*, const T*, T*);                 \
  template void encode_backward_cpu<T>(const Layout&, int64_t, const T*, const T*, const T*, T*, T*, bool);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void encode_forward_cuda(const Layout&, int64_t, const T*, const T*, T*, Device) {
  throw std::runtime_error("hashgrid::encode_forward(): csdkit was not compiled with CUDA support");
}
template <typename T>
void encode_backward_cuda(const Layout&, int64_t, const T*, const T*, const T*, T*, T*, Device, bool) {
  throw std::runtime_error("hashgrid::encode_backward(): csdkit was not compiled with CUDA support");
}
template void encode_forward_cuda<float>(const Layout&, int64_t, const float*, const float*, float*, Device);
template void encode_forward_cuda<double>(const Layout&, int64_t, const double*, const double*, double*, Device);
template void encode_backward_cuda<float>(const Layout&, int64_t, const float*, const float*, const float*,
                                          float*, float*, Device, bool);
template void encode_backward_cuda<double>(const Layout&, int64_t, const double*, const double*, const double*,
                                           double*, double*, Device, bool);
#endif

}  // namespace hashgrid
}  // namespace csdkit
