// Ray marching through an occupancy grid: CUDA kernels, one thread per ray, the same march_ray()
// as the CPU path (csdkit/volrend_marching.h), run twice: count, then fill.
#include "csdkit/volrend_marching.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace volrend {

namespace {

template <typename T>
__device__ __forceinline__ void march_thread(const MarchArgs<T>& a, int64_t r, T step, T cone, T near_plane,
                                             T far_plane, int64_t* count_out, const int64_t* packed_info) {
  const T jitter = a.jitter ? a.jitter[r] : T(0);
  if (count_out) {
    int64_t n = 0;
    march_ray<T>(a.grid, a.rays_o + 3 * r, a.rays_d + 3 * r, jitter, step, cone, near_plane, far_plane,
                 [&](T, T) { ++n; });
    count_out[r] = n;
    return;
  }
  const int64_t start = packed_info[2 * r], count = packed_info[2 * r + 1];
  int64_t n = 0;
  march_ray<T>(a.grid, a.rays_o + 3 * r, a.rays_d + 3 * r, jitter, step, cone, near_plane, far_plane,
               [&](T t0, T t1) {
                 if (n < count) {
                   a.ray_indices[start + n] = r;
                   a.t_starts[start + n] = t0;
                   a.t_ends[start + n] = t1;
                 }
                 ++n;
               });
}

template <typename T>
__global__ void march_kernel(const MarchArgs<T> a, bool count_pass) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= a.n_rays) return;
  march_thread<T>(a, r, T(a.step_size), T(a.cone_angle), T(a.near_plane), T(a.far_plane),
                  count_pass ? a.counts : nullptr, a.packed_info);
}

constexpr int kThreads = 128;

}  // namespace

template <typename T>
void march_count_cuda(const MarchArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  march_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a, true);
  cuda::check_launch("volrend march_kernel (count)");
}

template <typename T>
void march_fill_cuda(const MarchArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  march_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a, false);
  cuda::check_launch("volrend march_kernel (fill)");
}

template void march_count_cuda<float>(const MarchArgs<float>&, Device);
template void march_count_cuda<double>(const MarchArgs<double>&, Device);
template void march_fill_cuda<float>(const MarchArgs<float>&, Device);
template void march_fill_cuda<double>(const MarchArgs<double>&, Device);

}  // namespace volrend
}  // namespace csdkit
