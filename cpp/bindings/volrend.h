// Binding adapters for the volume-rendering kernels (csdkit/volrend_*.h): pointer casts, dtype
// dispatch and GIL release. Shapes, dtypes and devices were checked by csdkit.ops (Python).
#pragma once

#include <pybind11/stl.h>

#include <vector>

#include "common.h"
#include "csdkit/volrend_compositing.h"
#include "csdkit/volrend_marching.h"
#include "csdkit/volrend_ray.h"

namespace csdkit_bind {

inline void volrend_ray_aabb(int64_t n, uintptr_t rays_o, uintptr_t rays_d, const std::vector<double>& aabb,
                             double near_plane, double far_plane, uintptr_t t_near, uintptr_t t_far, uintptr_t hit,
                             const std::string& dtype, int device, uintptr_t stream) {
  if (aabb.size() != 6) throw std::invalid_argument("volrend_ray_aabb(): aabb must hold 6 numbers");
  py::gil_scoped_release nogil;
  dispatch_float("volrend_ray_aabb", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::volrend::RayAabbArgs<T> a;
    a.n_rays = n;
    a.rays_o = ptr<const T>(rays_o);
    a.rays_d = ptr<const T>(rays_d);
    for (int i = 0; i < 6; ++i) a.aabb[i] = aabb[i];
    a.near_plane = near_plane;
    a.far_plane = far_plane;
    a.t_near = ptr<T>(t_near);
    a.t_far = ptr<T>(t_far);
    a.hit = ptr<uint8_t>(hit);
    csdkit::volrend::ray_aabb_intersect<T>(a, device_of(device, stream));
  });
}

template <typename T>
csdkit::volrend::MarchArgs<T> march_args(int64_t n, uintptr_t rays_o, uintptr_t rays_d, uintptr_t jitter,
                                         uintptr_t grid, const std::vector<int>& res,
                                         const std::vector<double>& aabbs, double step, double cone,
                                         double near_plane, double far_plane) {
  if (res.size() != 3) throw std::invalid_argument("volrend_march(): res must hold 3 ints");
  if (aabbs.empty() || aabbs.size() % 6 != 0)
    throw std::invalid_argument("volrend_march(): aabbs must hold 6 numbers per level");
  csdkit::volrend::MarchArgs<T> a;
  a.n_rays = n;
  a.rays_o = ptr<const T>(rays_o);
  a.rays_d = ptr<const T>(rays_d);
  a.jitter = ptr<const T>(jitter);
  a.grid = csdkit::volrend::make_grid<T>(ptr<const uint8_t>(grid), int(aabbs.size() / 6), res.data(), aabbs.data());
  a.step_size = step;
  a.cone_angle = cone;
  a.near_plane = near_plane;
  a.far_plane = far_plane;
  return a;
}

inline void volrend_march_count(int64_t n, uintptr_t rays_o, uintptr_t rays_d, uintptr_t jitter, uintptr_t grid,
                                const std::vector<int>& res, const std::vector<double>& aabbs, double step,
                                double cone, double near_plane, double far_plane, uintptr_t counts,
                                const std::string& dtype, int device, uintptr_t stream) {
  dispatch_float("volrend_march_count", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto a = march_args<T>(n, rays_o, rays_d, jitter, grid, res, aabbs, step, cone, near_plane, far_plane);
    a.counts = ptr<int64_t>(counts);
    py::gil_scoped_release nogil;
    csdkit::volrend::march_count<T>(a, device_of(device, stream));
  });
}

inline void volrend_march_fill(int64_t n, uintptr_t rays_o, uintptr_t rays_d, uintptr_t jitter, uintptr_t grid,
                               const std::vector<int>& res, const std::vector<double>& aabbs, double step,
                               double cone, double near_plane, double far_plane, uintptr_t packed_info,
                               uintptr_t ray_indices, uintptr_t t_starts, uintptr_t t_ends, const std::string& dtype,
                               int device, uintptr_t stream) {
  dispatch_float("volrend_march_fill", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto a = march_args<T>(n, rays_o, rays_d, jitter, grid, res, aabbs, step, cone, near_plane, far_plane);
    a.packed_info = ptr<const int64_t>(packed_info);
    a.ray_indices = ptr<int64_t>(ray_indices);
    a.t_starts = ptr<T>(t_starts);
    a.t_ends = ptr<T>(t_ends);
    py::gil_scoped_release nogil;
    csdkit::volrend::march_fill<T>(a, device_of(device, stream));
  });
}

inline void volrend_weights_forward(int64_t n_rays, int64_t n_samples, uintptr_t packed_info, uintptr_t t_starts,
                                    uintptr_t t_ends, uintptr_t input, int mode, double eps, uintptr_t weights,
                                    uintptr_t trans, uintptr_t alphas, const std::string& dtype, int device,
                                    uintptr_t stream) {
  py::gil_scoped_release nogil;
  dispatch_float("volrend_weights_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::volrend::WeightsArgs<T> a;
    a.mode = mode;
    a.n_rays = n_rays;
    a.n_samples = n_samples;
    a.packed_info = ptr<const int64_t>(packed_info);
    a.t_starts = ptr<const T>(t_starts);
    a.t_ends = ptr<const T>(t_ends);
    a.input = ptr<const T>(input);
    a.early_stop_eps = eps;
    a.weights = ptr<T>(weights);
    a.transmittance = ptr<T>(trans);
    a.alphas = ptr<T>(alphas);
    csdkit::volrend::weights_forward<T>(a, device_of(device, stream));
  });
}

inline void volrend_weights_backward(int64_t n_rays, int64_t n_samples, uintptr_t packed_info, uintptr_t t_starts,
                                     uintptr_t t_ends, int mode, double eps, uintptr_t trans, uintptr_t alphas,
                                     uintptr_t d_weights, uintptr_t d_trans, uintptr_t d_alphas, uintptr_t d_input,
                                     uintptr_t d_tau, const std::string& dtype, int device, uintptr_t stream) {
  py::gil_scoped_release nogil;
  dispatch_float("volrend_weights_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::volrend::WeightsBackwardArgs<T> a;
    a.mode = mode;
    a.n_rays = n_rays;
    a.n_samples = n_samples;
    a.packed_info = ptr<const int64_t>(packed_info);
    a.t_starts = ptr<const T>(t_starts);
    a.t_ends = ptr<const T>(t_ends);
    a.early_stop_eps = eps;
    a.transmittance = ptr<const T>(trans);
    a.alphas = ptr<const T>(alphas);
    a.d_weights = ptr<const T>(d_weights);
    a.d_transmittance = ptr<const T>(d_trans);
    a.d_alphas = ptr<const T>(d_alphas);
    a.d_input = ptr<T>(d_input);
    a.d_tau = ptr<T>(d_tau);
    csdkit::volrend::weights_backward<T>(a, device_of(device, stream));
  });
}

// (status, covers_all) for a CPU packed_info; see csdkit::volrend::check_packed_info.
inline py::tuple volrend_check_packed(uintptr_t packed_info, int64_t n_rays, int64_t n_samples) {
  bool covers_all = false;
  int status;
  {
    py::gil_scoped_release nogil;
    status = csdkit::volrend::check_packed_info(ptr<const int64_t>(packed_info), n_rays, n_samples, &covers_all);
  }
  return py::make_tuple(status, covers_all);
}

template <typename T>
csdkit::volrend::AccumulateArgs<T> accumulate_args(int64_t n_rays, int64_t n_samples, int channels,
                                                   uintptr_t packed_info, uintptr_t ray_indices, uintptr_t weights,
                                                   uintptr_t values) {
  csdkit::volrend::AccumulateArgs<T> a;
  a.n_rays = n_rays;
  a.n_samples = n_samples;
  a.channels = channels;
  a.packed_info = ptr<const int64_t>(packed_info);
  a.ray_indices = ptr<const int64_t>(ray_indices);
  a.weights = ptr<const T>(weights);
  a.values = ptr<const T>(values);
  return a;
}

inline void volrend_accumulate_forward(int64_t n_rays, int64_t n_samples, int channels, uintptr_t packed_info,
                                       uintptr_t ray_indices, uintptr_t weights, uintptr_t values, uintptr_t out,
                                       const std::string& dtype, int device, uintptr_t stream) {
  py::gil_scoped_release nogil;
  dispatch_float("volrend_accumulate_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto a = accumulate_args<T>(n_rays, n_samples, channels, packed_info, ray_indices, weights, values);
    a.out = ptr<T>(out);
    csdkit::volrend::accumulate_forward<T>(a, device_of(device, stream));
  });
}

inline void volrend_accumulate_backward(int64_t n_rays, int64_t n_samples, int channels, uintptr_t packed_info,
                                        uintptr_t ray_indices, uintptr_t weights, uintptr_t values, uintptr_t d_out,
                                        uintptr_t d_weights, uintptr_t d_values, const std::string& dtype,
                                        int device, uintptr_t stream) {
  py::gil_scoped_release nogil;
  dispatch_float("volrend_accumulate_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto a = accumulate_args<T>(n_rays, n_samples, channels, packed_info, ray_indices, weights, values);
    a.d_out = ptr<const T>(d_out);
    a.d_weights = ptr<T>(d_weights);
    a.d_values = ptr<T>(d_values);
    csdkit::volrend::accumulate_backward<T>(a, device_of(device, stream));
  });
}

}  // namespace csdkit_bind
