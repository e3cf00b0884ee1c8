// Ray / axis-aligned-box intersection: dispatch and the CPU kernel (math in csdkit/volrend_ray.h).
#include <cmath>
#include <string>

#include "csdkit/parallel.h"
#include "csdkit/volrend_ray.h"

namespace csdkit {
namespace volrend {

template <typename T>
void ray_aabb_intersect_cpu(const RayAabbArgs<T>& a) {
  const T lo[3] = {T(a.aabb[0]), T(a.aabb[1]), T(a.aabb[2])};
  const T hi[3] = {T(a.aabb[3]), T(a.aabb[4]), T(a.aabb[5])};
  const T near_plane = T(a.near_plane), far_plane = T(a.far_plane);
  parallel_for(a.n_rays, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      a.hit[r] = ray_aabb<T>(a.rays_o + 3 * r, a.rays_d + 3 * r, lo, hi, near_plane, far_plane, a.t_near + r,
                             a.t_far + r);
  });
}

template <typename T>
void ray_aabb_intersect(const RayAabbArgs<T>& a, Device dev) {
  const char* fn = "volrend::ray_aabb_intersect";
  check_arg(a.n_rays >= 0, fn, "n_rays must be >= 0, got " + std::to_string(a.n_rays));
  check_arg(a.n_rays == 0 || (a.rays_o && a.rays_d && a.t_near && a.t_far && a.hit), fn,
            "rays_o, rays_d, t_near, t_far and hit must not be null");
  for (int c = 0; c < 3; ++c)
    check_arg(std::isfinite(a.aabb[c]) && std::isfinite(a.aabb[c + 3]) && a.aabb[c] < a.aabb[c + 3], fn,
              "aabb must be finite with min < max on every axis");
  if (a.n_rays == 0) return;
  if (dev.is_cuda())
    ray_aabb_intersect_cuda<T>(a, dev);
  else
    ray_aabb_intersect_cpu<T>(a);
}

template void ray_aabb_intersect<float>(const RayAabbArgs<float>&, Device);
template void ray_aabb_intersect<double>(const RayAabbArgs<double>&, Device);
template void ray_aabb_intersect_cpu<float>(const RayAabbArgs<float>&);
template void ray_aabb_intersect_cpu<double>(const RayAabbArgs<double>&);

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void ray_aabb_intersect_cuda(const RayAabbArgs<T>&, Device) {
  throw std::runtime_error("volrend::ray_aabb_intersect(): csdkit was not compiled with CUDA support");
}
template void ray_aabb_intersect_cuda<float>(const RayAabbArgs<float>&, Device);
template void ray_aabb_intersect_cuda<double>(const RayAabbArgs<double>&, Device);
#endif

}  // namespace volrend
}  // namespace csdkit
