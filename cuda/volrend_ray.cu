// Ray / axis-aligned-box intersection: CUDA kernel (math in csdkit/volrend_ray.h).
#include "csdkit/volrend_ray.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace volrend {

namespace {

template <typename T>
struct Box {
  T lo[3], hi[3];
};

template <typename T>
__global__ void ray_aabb_kernel(int64_t n, const T* __restrict__ rays_o, const T* __restrict__ rays_d, Box<T> box,
                                T near_plane, T far_plane, T* __restrict__ t_near, T* __restrict__ t_far,
                                uint8_t* __restrict__ hit) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= n) return;
  hit[r] = ray_aabb<T>(rays_o + 3 * r, rays_d + 3 * r, box.lo, box.hi, near_plane, far_plane, t_near + r, t_far + r);
}

constexpr int kThreads = 256;

}  // namespace

template <typename T>
void ray_aabb_intersect_cuda(const RayAabbArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  Box<T> box;
  for (int c = 0; c < 3; ++c) {
    box.lo[c] = T(a.aabb[c]);
    box.hi[c] = T(a.aabb[c + 3]);
  }
  ray_aabb_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
      a.n_rays, a.rays_o, a.rays_d, box, T(a.near_plane), T(a.far_plane), a.t_near, a.t_far, a.hit);
  cuda::check_launch("volrend ray_aabb_kernel");
}

template void ray_aabb_intersect_cuda<float>(const RayAabbArgs<float>&, Device);
template void ray_aabb_intersect_cuda<double>(const RayAabbArgs<double>&, Device);

}  // namespace volrend
}  // namespace csdkit
