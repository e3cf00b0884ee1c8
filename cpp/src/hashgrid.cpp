// Hash-grid encoding: layout, dispatch and the CPU kernels.
#include "csdkit/hashgrid.h"

#include <algorithm>
#include <string>

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
    L.scale[l] = scale;
    L.resolution[l] = res;
    L.offsets[l] = static_cast<uint32_t>(offset);
    offset += size;
    check_arg(offset < (uint64_t(1) << 31), fn, "the parameter table exceeds 2**31 rows");
  }
  L.offsets[opt.n_levels] = static_cast<uint32_t>(offset);
  return L;
}

namespace {
template <typename T>
struct PlainAdd {
  void operator()(T* p, T v) const { *p += v; }
};
}  // namespace

// CPU loop structure (the per-element math is the shared Cell of hashgrid.h):
// * level-major inside each thread's range of points, so one level's table (at most
//   2**log2_hashmap_size rows, 4 MiB at the defaults) stays cache-resident while all points visit it;
// * points in blocks of kBlock: first every corner's row and weight, then all the memory accesses,
//   so the loads (or read-modify-writes) of a block are independent and overlap in flight.
constexpr int kBlock = 32;

template <typename T, int D>
struct Block {
  static constexpr int C = 1 << D;
  uint32_t rows[kBlock][C];
  T weights[kBlock][C];
  T weight_grads[kBlock][C][D];

  // Fills rows/weights (and weight gradients if asked) for points [i0, i0 + nb) at level l.
  void load(const Layout& L, int l, const T* x, int64_t i0, int nb, bool grads) {
    for (int k = 0; k < nb; ++k) {
      const Cell<T, D> cell(L, l, x + (i0 + k) * D);
      for (int c = 0; c < C; ++c) {
        rows[k][c] = cell.row(c);
        weights[k][c] = cell.weight(c);
        if (grads)
          for (int d = 0; d < D; ++d) weight_grads[k][c][d] = cell.weight_grad(c, d);
      }
    }
  }
};

template <typename T>
void encode_forward_cpu(const Layout& L, int64_t n, const T* x, const T* params, T* out) {
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value, C = 1 << D;
    parallel_for(n, 1024, [&](int64_t begin, int64_t end) {
      Block<T, D> blk;
      for (int l = 0; l < L.n_levels; ++l) {
        const T* table = params + int64_t(L.offsets[l]) * F;
        for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
          const int nb = int(std::min<int64_t>(kBlock, end - i0));
          blk.load(L, l, x, i0, nb, false);
          for (int k = 0; k < nb; ++k) {
            T acc[F] = {};
            for (int c = 0; c < C; ++c) {
              const T* row = table + int64_t(blk.rows[k][c]) * F;
              for (int j = 0; j < F; ++j) acc[j] += blk.weights[k][c] * row[j];
            }
            T* o = out + ((i0 + k) * L.n_levels + l) * F;
            for (int j = 0; j < F; ++j) o[j] = acc[j];
          }
        }
      }
    });
  });
}

template <typename T>
void encode_backward_cpu(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out,
                         T* d_params, T* d_x) {
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value, C = 1 << D;
    if (d_params) {
      // Race-free and deterministic: each task owns whole levels, i.e. disjoint rows of d_params.
      // Levels are dealt round-robin (task k takes k, k + tasks, ...) so cheap coarse levels and
      // expensive hashed fine levels are spread evenly over the threads.
      const int tasks = std::max(1, std::min(num_threads(), L.n_levels));
      parallel_for(tasks, 1, [&](int64_t tb, int64_t te) {
        Block<T, D> blk;
        for (int64_t task = tb; task < te; ++task)
          for (int l = int(task); l < L.n_levels; l += tasks) {
            T* grad = d_params + int64_t(L.offsets[l]) * F;
            for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
              const int nb = int(std::min<int64_t>(kBlock, n - i0));
              blk.load(L, l, x, i0, nb, false);
              for (int k = 0; k < nb; ++k) {
                const T* g = d_out + ((i0 + k) * L.n_levels + l) * F;
                for (int c = 0; c < C; ++c) {
                  T* row = grad + int64_t(blk.rows[k][c]) * F;
                  for (int j = 0; j < F; ++j) row[j] += blk.weights[k][c] * g[j];
                }
              }
            }
          }
      });
    }
    if (d_x) {
      parallel_for(n, 1024, [&](int64_t begin, int64_t end) {
        Block<T, D> blk;
        std::fill(d_x + begin * D, d_x + end * D, T(0));
        for (int l = 0; l < L.n_levels; ++l) {
          const T* table = params + int64_t(L.offsets[l]) * F;
          for (int64_t i0 = begin; i0 < end; i0 += kBlock) {
            const int nb = int(std::min<int64_t>(kBlock, end - i0));
            blk.load(L, l, x, i0, nb, true);
            for (int k = 0; k < nb; ++k) {
              const T* g = d_out + ((i0 + k) * L.n_levels + l) * F;
              T* dx = d_x + (i0 + k) * D;
              for (int c = 0; c < C; ++c) {
                const T* row = table + int64_t(blk.rows[k][c]) * F;
                T v = T(0);
                for (int j = 0; j < F; ++j) v += g[j] * row[j];
                for (int e = 0; e < D; ++e) dx[e] += v * blk.weight_grads[k][c][e];
              }
            }
          }
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
                     T* d_x, Device dev) {
  check_common(L, n, x, params, "hashgrid::encode_backward");
  if (n == 0) return;
  if (dev.is_cuda())
    encode_backward_cuda<T>(L, n, x, params, d_out, d_params, d_x, dev);
  else
    encode_backward_cpu<T>(L, n, x, params, d_out, d_params, d_x);
}

#define CSDKIT_INSTANTIATE(T)                                                                          \
  template void encode_forward<T>(const Layout&, int64_t, const T*, const T*, T*, Device);             \
  template void encode_backward<T>(const Layout&, int64_t, const T*, const T*, const T*, T*, T*, Device); \
  template void encode_forward_cpu<T>(const Layout&, int64_t, const T*, const T*, T*);                 \
  template void encode_backward_cpu<T>(const Layout&, int64_t, const T*, const T*, const T*, T*, T*);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void encode_forward_cuda(const Layout&, int64_t, const T*, const T*, T*, Device) {
  throw std::runtime_error("hashgrid::encode_forward(): csdkit was not compiled with CUDA support");
}
template <typename T>
void encode_backward_cuda(const Layout&, int64_t, const T*, const T*, const T*, T*, T*, Device) {
  throw std::runtime_error("hashgrid::encode_backward(): csdkit was not compiled with CUDA support");
}
template void encode_forward_cuda<float>(const Layout&, int64_t, const float*, const float*, float*, Device);
template void encode_forward_cuda<double>(const Layout&, int64_t, const double*, const double*, double*, Device);
template void encode_backward_cuda<float>(const Layout&, int64_t, const float*, const float*, const float*,
                                          float*, float*, Device);
template void encode_backward_cuda<double>(const Layout&, int64_t, const double*, const double*, const double*,
                                           double*, double*, Device);
#endif

}  // namespace hashgrid
}  // namespace csdkit
