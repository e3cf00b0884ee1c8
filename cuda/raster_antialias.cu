// Antialiasing: CUDA kernels (one thread per pixel, a gather like the CPU path; the position gradient
// is a scatter with atomicAdd). The math is csdkit/raster_antialias.h, shared with the CPU path.
#include "csdkit/raster_antialias.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace raster {

namespace {

constexpr int kThreads = 256;

template <typename T>
struct AtomicAddPos {
  T* d_pos;  // this image's [V, 4] block, or null
  __device__ void operator()(int32_t v, const T* ds, T dl_ds) const {
    if (!d_pos) return;
    T* g = d_pos + int64_t(v) * 4;
    atomicAdd(g + 0, ds[0] * dl_ds);
    atomicAdd(g + 1, ds[1] * dl_ds);
    atomicAdd(g + 3, ds[2] * dl_ds);
  }
};

template <typename T>
__global__ void forward_kernel(const AntialiasParams p, const T* __restrict__ color, const T* __restrict__ rast,
                               const T* __restrict__ pos, const int32_t* __restrict__ tri,
                               const int32_t* __restrict__ topology, T* __restrict__ out,
                               T* __restrict__ weight) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width;
  if (i >= p.batch * hw) return;
  const T* pos_i = pos + (p.pos_batch == 1 ? 0 : i / hw) * p.n_vertices * 4;
  antialias_pixel(p, color, rast, pos_i, tri, topology, i, out + i * p.n_channels, weight + i);
}

template <typename T>
__global__ void backward_kernel(const AntialiasParams p, const T* __restrict__ color, const T* __restrict__ rast,
                                const T* __restrict__ pos, const int32_t* __restrict__ tri,
                                const int32_t* __restrict__ topology, const T* __restrict__ out,
                                const T* __restrict__ weight, const T* __restrict__ d_out, T* d_color, T* d_pos) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width;
  if (i >= p.batch * hw) return;
  const int64_t off = (p.pos_batch == 1 ? 0 : i / hw) * p.n_vertices * 4;
  AtomicAddPos<T> add{d_pos ? d_pos + off : nullptr};
  antialias_pixel_backward(p, color, rast, pos + off, tri, topology, out, weight, d_out, i, d_color, add);
}

}  // namespace

template <typename T>
void antialias_forward_cuda(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                            const int32_t* topology, T* out, T* weight, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  forward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(p, color, rast, pos, tri,
                                                                                        topology, out, weight);
  cuda::check_launch("antialias forward_kernel");
}

template <typename T>
void antialias_backward_cuda(const AntialiasParams& p, const T* color, const T* rast, const T* pos,
                             const int32_t* tri, const int32_t* topology, const T* out, const T* weight,
                             const T* d_out, T* d_color, T* d_pos, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  backward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
      p, color, rast, pos, tri, topology, out, weight, d_out, d_color, d_pos);
  cuda::check_launch("antialias backward_kernel");
}

#define CSDKIT_INSTANTIATE(T)                                                                                    \
  template void antialias_forward_cuda<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*,  \
                                          const int32_t*, T*, T*, Device);                                       \
  template void antialias_backward_cuda<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*, \
                                           const int32_t*, const T*, const T*, const T*, T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

}  // namespace raster
}  // namespace csdkit
