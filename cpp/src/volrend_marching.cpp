// Ray marching through an occupancy grid: grid set-up, dispatch and the CPU kernels
// (math in csdkit/volrend_marching.h).
#include <cmath>
#include <string>

#include "csdkit/parallel.h"
#include "csdkit/volrend_marching.h"

namespace csdkit {
namespace volrend {

template <typename T>
Grid<T> make_grid(const uint8_t* binaries, int levels, const int* res, const double* aabbs) {
  const char* fn = "volrend::make_grid";
  check_arg(levels >= 1 && levels <= kMaxGridLevels, fn,
            "levels must be in [1, " + std::to_string(kMaxGridLevels) + "], got " + std::to_string(levels));
  check_arg(res != nullptr && aabbs != nullptr, fn, "res and aabbs must not be null");
  Grid<T> g;
  g.binaries = binaries;
  g.levels = levels;
  for (int a = 0; a < 3; ++a) {
    check_arg(res[a] >= 1 && res[a] <= (1 << 16), fn, "res must be in [1, 65536], got " + std::to_string(res[a]));
    g.res[a] = res[a];
  }
  for (int l = 0; l < levels; ++l) {
    for (int a = 0; a < 3; ++a) {
      const double lo = aabbs[6 * l + a], hi = aabbs[6 * l + 3 + a];
      check_arg(std::isfinite(lo) && std::isfinite(hi) && lo < hi, fn,
                "level " + std::to_string(l) + " box must be finite with min < max on every axis");
      g.lo[l][a] = T(lo);
      g.hi[l][a] = T(hi);
      g.scale[l][a] = T(g.res[a]) / (g.hi[l][a] - g.lo[l][a]);
    }
  }
  return g;
}

namespace {

template <typename T>
void check_march(const MarchArgs<T>& a, const char* fn) {
  check_arg(a.n_rays >= 0, fn, "n_rays must be >= 0, got " + std::to_string(a.n_rays));
  check_arg(a.n_rays == 0 || (a.rays_o && a.rays_d), fn, "rays_o and rays_d must not be null");
  check_arg(a.step_size > 0 && std::isfinite(a.step_size), fn,
            "step_size must be > 0 and finite, got " + std::to_string(a.step_size));
  check_arg(a.cone_angle >= 0 && std::isfinite(a.cone_angle), fn,
            "cone_angle must be >= 0 and finite, got " + std::to_string(a.cone_angle));
  check_arg(a.grid.levels >= 1 && a.grid.levels <= kMaxGridLevels, fn, "grid is empty (build it with make_grid)");
}

template <typename T, typename Emit>
void march_one(const MarchArgs<T>& a, int64_t r, Emit&& emit) {
  const T jitter = a.jitter ? a.jitter[r] : T(0);
  march_ray<T>(a.grid, a.rays_o + 3 * r, a.rays_d + 3 * r, jitter, T(a.step_size), T(a.cone_angle),
               T(a.near_plane), T(a.far_plane), emit);
}

}  // namespace

template <typename T>
void march_count_cpu(const MarchArgs<T>& a) {
  parallel_for(a.n_rays, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t n = 0;
      march_one(a, r, [&](T, T) { ++n; });
      a.counts[r] = n;
    }
  });
}

template <typename T>
void march_fill_cpu(const MarchArgs<T>& a) {
  parallel_for(a.n_rays, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t start = a.packed_info[2 * r], count = a.packed_info[2 * r + 1];
      int64_t n = 0;
      march_one(a, r, [&](T t0, T t1) {
        if (n < count) {  // a packed_info from another grid state cannot overflow the range
          a.ray_indices[start + n] = r;
          a.t_starts[start + n] = t0;
          a.t_ends[start + n] = t1;
        }
        ++n;
      });
      if (n != count)
        throw std::invalid_argument("volrend::march_fill(): packed_info does not match march_count for ray " +
                                    std::to_string(r) + " (grid or rays changed in between)");
    }
  });
}

template <typename T>
void march_count(const MarchArgs<T>& a, Device dev) {
  check_march(a, "volrend::march_count");
  check_arg(a.n_rays == 0 || a.counts, "volrend::march_count", "counts must not be null");
  if (a.n_rays == 0) return;
  if (dev.is_cuda())
    march_count_cuda<T>(a, dev);
  else
    march_count_cpu<T>(a);
}

template <typename T>
void march_fill(const MarchArgs<T>& a, Device dev) {
  check_march(a, "volrend::march_fill");
  check_arg(a.n_rays == 0 || (a.packed_info && a.ray_indices && a.t_starts && a.t_ends), "volrend::march_fill",
            "packed_info, ray_indices, t_starts and t_ends must not be null");
  if (a.n_rays == 0) return;
  if (dev.is_cuda())
    march_fill_cuda<T>(a, dev);
  else
    march_fill_cpu<T>(a);
}

#define CSDKIT_INSTANTIATE(T)                                                              \
  template Grid<T> make_grid<T>(const uint8_t*, int, const int*, const double*);           \
  template void march_count<T>(const MarchArgs<T>&, Device);                               \
  template void march_fill<T>(const MarchArgs<T>&, Device);                                \
  template void march_count_cpu<T>(const MarchArgs<T>&);                                   \
  template void march_fill_cpu<T>(const MarchArgs<T>&);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void march_count_cuda(const MarchArgs<T>&, Device) {
  throw std::runtime_error("volrend::march_count(): csdkit was not compiled with CUDA support");
}
template <typename T>
void march_fill_cuda(const MarchArgs<T>&, Device) {
  throw std::runtime_error("volrend::march_fill(): csdkit was not compiled with CUDA support");
}
template void march_count_cuda<float>(const MarchArgs<float>&, Device);
template void march_count_cuda<double>(const MarchArgs<double>&, Device);
template void march_fill_cuda<float>(const MarchArgs<float>&, Device);
template void march_fill_cuda<double>(const MarchArgs<double>&, Device);
#endif

}  // namespace volrend
}  // namespace csdkit
