// csdkit/volrend_marching.h -- ray marching through a multi-level occupancy grid, emitting packed
// samples. The pure-PyTorch twin (the specification) is python/csdkit/ops/reference/ray_marching.py.
//
// The rule, per ray (all arithmetic in T, products rounded before additions, see mul_rn):
//   (t_near, t_far) = ray_aabb(outermost level box, near_plane, far_plane); a miss, or t_far = inf
//   (a zero direction without far plane), gives no samples.
//   t_0 = t_near + jitter * step                                    (jitter in [0, 1), 0 if none)
//   cone_angle == 0:  t_k = t_0 + k * step,              dt_k = step
//   cone_angle  > 0:  dt_k = max(step, t_k * cone_angle), t_{k+1} = t_k + dt_k
//   step k is visited while mid_k = t_k + 0.5 * dt_k < t_far; it is emitted as [t_k, t_k + dt_k]
//   when the point o + mid_k * d lies in an occupied cell of the finest level containing it.
// Level l covers the box [lo_l, hi_l] with res cells per axis; a point's cell coordinate is
//   u = (x - lo_l) * scale_l,  scale_l = res / (hi_l - lo_l)   (in T),
// cell floor(u), and the point is in level l when 0 <= u < res on every axis.
//
// Empty space: without a cone angle the kernels jump from an empty cell straight to (one step
// before) the first step whose midpoint may leave it; the emitted samples are exactly those of
// the step-by-step rule above.
#pragma once

#include <cmath>
#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/volrend_ray.h"

namespace csdkit {
namespace volrend {

constexpr int kMaxGridLevels = 16;

// An occupancy grid as the kernels see it. Build with make_grid() (host).
template <typename T>
struct Grid {
  const uint8_t* binaries = nullptr;  // [levels, res0, res1, res2] 0/1, x-major; nullptr = all occupied
  int levels = 1;
  int res[3] = {1, 1, 1};
  T lo[kMaxGridLevels][3] = {};     // level boxes, fine to coarse
  T hi[kMaxGridLevels][3] = {};
  T scale[kMaxGridLevels][3] = {};  // res / (hi - lo), computed in T
};

// `aabbs` holds levels * 6 doubles (xmin, ymin, zmin, xmax, ymax, zmax per level, fine to coarse);
// validates them (throws std::invalid_argument).
template <typename T>
Grid<T> make_grid(const uint8_t* binaries, int levels, const int* res, const double* aabbs);

// Level and cell of point x: returns the level (-1 outside every level) and writes the cell.
template <typename T>
CSDKIT_HD int locate(const Grid<T>& g, const T* x, int* cell) {
  for (int l = 0; l < g.levels; ++l) {
    bool inside = true;
    int c[3];
    for (int a = 0; a < 3; ++a) {
      const T u = (x[a] - g.lo[l][a]) * g.scale[l][a];
      inside = inside && u >= T(0) && u < T(g.res[a]);
      c[a] = inside ? static_cast<int>(u) : 0;  // 0 <= u < res: truncation is floor
    }
    if (inside) {
      cell[0] = c[0];
      cell[1] = c[1];
      cell[2] = c[2];
      return l;
    }
  }
  return -1;
}

template <typename T>
CSDKIT_HD bool cell_occupied(const Grid<T>& g, int level, const int* cell) {
  if (g.binaries == nullptr) return true;
  const int64_t idx = ((int64_t(level) * g.res[0] + cell[0]) * g.res[1] + cell[1]) * g.res[2] + cell[2];
  return g.binaries[idx] != 0;
}

// Ray parameter at which the ray leaves the cell (computed in double: it only steers the jump).
template <typename T>
CSDKIT_HD double cell_exit(const Grid<T>& g, int level, const int* cell, const T* o, const T* d) {
  double t_exit = 1e300;
  for (int a = 0; a < 3; ++a) {
    if (d[a] == T(0)) continue;
    const double lo = double(g.lo[level][a]), hi = double(g.hi[level][a]);
    const double size = (hi - lo) / g.res[a];
    const double bound = d[a] > T(0) ? lo + (cell[a] + 1) * size : lo + cell[a] * size;
    const double t = (bound - double(o[a])) / double(d[a]);
    t_exit = t < t_exit ? t : t_exit;
  }
  return t_exit;
}

// Marches one ray and calls emit(t_start, t_end) for every kept step, in order.
template <typename T, typename Emit>
CSDKIT_HD void march_ray(const Grid<T>& g, const T* o, const T* d, T jitter, T step, T cone_angle, T near_plane,
                         T far_plane, Emit&& emit) {
  const int outer = g.levels - 1;
  T t_near, t_far;
  if (!ray_aabb<T>(o, d, g.lo[outer], g.hi[outer], near_plane, far_plane, &t_near, &t_far)) return;
  if (!(t_far < inf_t<T>())) return;  // a zero direction with no far plane: no samples
  const T t0 = t_near + mul_rn(jitter, step);
  const T half = T(0.5);
  int cell[3];
  T x[3];
  if (cone_angle > T(0)) {
    T t = t0;
    for (;;) {
      const T dt = max_t(step, mul_rn(t, cone_angle));
      const T mid = t + mul_rn(half, dt);
      if (!(mid < t_far)) break;
      for (int a = 0; a < 3; ++a) x[a] = o[a] + mul_rn(mid, d[a]);
      const int level = locate(g, x, cell);
      if (level >= 0 && cell_occupied(g, level, cell)) emit(t, t + dt);
      t = t + dt;
    }
    return;
  }
  // Entry of the ray into each finer level box (to bound jumps through coarse cells).
  double finer_entry[kMaxGridLevels];
  for (int l = 0; l + 1 < g.levels; ++l) {
    T tn, tf;
    finer_entry[l] = ray_aabb<T>(o, d, g.lo[l], g.hi[l], -inf_t<T>(), inf_t<T>(), &tn, &tf) ? double(tn) : 1e300;
  }
  const T half_step = mul_rn(half, step);
  for (int64_t k = 0;; ++k) {
    const T t = t0 + mul_rn(T(k), step);
    const T mid = t + half_step;
    if (!(mid < t_far)) break;
    for (int a = 0; a < 3; ++a) x[a] = o[a] + mul_rn(mid, d[a]);
    const int level = locate(g, x, cell);
    if (level < 0) continue;
    if (cell_occupied(g, level, cell)) {
      emit(t, t + step);
      continue;
    }
    if (g.binaries == nullptr) continue;
    // Empty cell: every step whose midpoint is at least one step before the exit is in this cell.
    double t_exit = cell_exit(g, level, cell, o, d);
    // (a finer box entered up to one step ago may hold this point up to rounding: no jump then)
    if (level > 0 && finer_entry[level - 1] > double(mid) - double(step) && finer_entry[level - 1] < t_exit)
      t_exit = finer_entry[level - 1];
    const double k_exit = ceil((t_exit - double(t0)) / double(step) - 0.5) - 1.0;  // conservative
    if (k_exit > double(k + 1)) k = static_cast<int64_t>(k_exit) - 1;  // the loop's ++k lands on k_exit
  }
}

// ---- op -----------------------------------------------------------------------------------------
// Two passes over the same rule: march_count writes counts[r]; the caller turns them into
// packed_info (start = exclusive cumulative sum) and allocates S samples; march_fill writes them.
template <typename T>
struct MarchArgs {
  int64_t n_rays = 0;
  const T* rays_o = nullptr;  // [n_rays, 3]
  const T* rays_d = nullptr;  // [n_rays, 3]
  const T* jitter = nullptr;  // [n_rays] in [0, 1), or nullptr (no jitter)
  Grid<T> grid;               // from make_grid()
  double step_size = 0.0;     // > 0
  double cone_angle = 0.0;    // >= 0
  double near_plane = 0.0;
  double far_plane = std::numeric_limits<double>::infinity();
  int64_t* counts = nullptr;              // [n_rays] out of march_count
  const int64_t* packed_info = nullptr;   // [n_rays, 2] (start, count), input of march_fill
  int64_t* ray_indices = nullptr;         // [S] out of march_fill
  T* t_starts = nullptr;                  // [S] out of march_fill
  T* t_ends = nullptr;                    // [S] out of march_fill
};

template <typename T>
void march_count(const MarchArgs<T>& args, Device dev = {});
template <typename T>
void march_fill(const MarchArgs<T>& args, Device dev = {});

template <typename T>
void march_count_cpu(const MarchArgs<T>& args);
template <typename T>
void march_fill_cpu(const MarchArgs<T>& args);
template <typename T>
void march_count_cuda(const MarchArgs<T>& args, Device dev);
template <typename T>
void march_fill_cuda(const MarchArgs<T>& args, Device dev);

}  // namespace volrend
}  // namespace csdkit
