// csdkit/volrend_ray.h -- ray / axis-aligned-box intersection, and the exact-rounding helpers the
// volume-rendering kernels share.
//
// Slab test, per axis c with direction d_c != 0:  t1 = (lo_c - o_c) / d_c,  t2 = (hi_c - o_c) / d_c;
// an axis with d_c == 0 admits every t when lo_c <= o_c <= hi_c and none otherwise.
//   t_near = max(near_plane, max_c min(t1, t2)),  t_far = min(far_plane, min_c max(t1, t2)),
//   hit = t_near < t_far; rays that miss get t_near = t_far = 0.
// The pure-PyTorch twin is python/csdkit/ops/reference/ray_aabb.py.
#pragma once

#include <cstdint>
#include <limits>

#include "csdkit/common.h"
#include "csdkit/exact_math.h"

namespace csdkit {
namespace volrend {

// Marching decisions depend on exact positions, so every product that feeds an addition goes through
// mul_rn (csdkit/exact_math.h), which the CUDA build never fuses into an FMA.

template <typename T>
CSDKIT_HD T min_t(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
CSDKIT_HD T max_t(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
CSDKIT_HD T inf_t() {
  return std::numeric_limits<T>::infinity();
}

// Intersection of the ray o + t d with the box [lo, hi]; returns hit and writes the clipped interval
// (0, 0 on a miss).
template <typename T>
CSDKIT_HD bool ray_aabb(const T* o, const T* d, const T* lo, const T* hi, T near_plane, T far_plane, T* t_near,
                        T* t_far) {
  T tn = near_plane, tf = far_plane;
  for (int c = 0; c < 3; ++c) {
    if (d[c] == T(0)) {
      if (!(o[c] >= lo[c] && o[c] <= hi[c])) {
        tn = inf_t<T>();
        tf = -inf_t<T>();
      }
      continue;
    }
    const T t1 = (lo[c] - o[c]) / d[c];
    const T t2 = (hi[c] - o[c]) / d[c];
    tn = max_t(tn, min_t(t1, t2));
    tf = min_t(tf, max_t(t1, t2));
  }
  const bool hit = tn < tf;
  *t_near = hit ? tn : T(0);
  *t_far = hit ? tf : T(0);
  return hit;
}

// ---- op -----------------------------------------------------------------------------------------
// All arrays contiguous; T = float or double.
template <typename T>
struct RayAabbArgs {
  int64_t n_rays = 0;
  const T* rays_o = nullptr;  // [n_rays, 3]
  const T* rays_d = nullptr;  // [n_rays, 3]
  double aabb[6] = {-1, -1, -1, 1, 1, 1};  // xmin, ymin, zmin, xmax, ymax, zmax (cast to T)
  double near_plane = 0.0;
  double far_plane = std::numeric_limits<double>::infinity();
  T* t_near = nullptr;     // [n_rays] out
  T* t_far = nullptr;      // [n_rays] out
  uint8_t* hit = nullptr;  // [n_rays] out, 0/1 (a torch.bool buffer)
};

template <typename T>
void ray_aabb_intersect(const RayAabbArgs<T>& args, Device dev = {});

template <typename T>
void ray_aabb_intersect_cpu(const RayAabbArgs<T>& args);
template <typename T>
void ray_aabb_intersect_cuda(const RayAabbArgs<T>& args, Device dev);

}  // namespace volrend
}  // namespace csdkit
