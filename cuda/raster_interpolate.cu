// Attribute interpolation: CUDA kernels (one thread per pixel; the attribute gradient is a scatter
// with atomicAdd). The math is csdkit/raster_interpolate.h, shared with the CPU path.
#include "csdkit/raster_interpolate.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace raster {

namespace {

constexpr int kThreads = 256;

template <typename T>
struct AtomicAdd {
  __device__ void operator()(T* ptr, T value) const { atomicAdd(ptr, value); }
};

template <typename T>
__device__ __forceinline__ bool pixel_vertices(const InterpolateParams& p, const T* rast, const int32_t* tri,
                                               int64_t i, int64_t* v) {
  const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
  if (t < 0) return false;
  for (int k = 0; k < 3; ++k) {
    v[k] = tri[3 * t + k];
    if (v[k] < 0 || v[k] >= p.n_vertices) return false;
  }
  return true;
}

template <typename T>
__global__ void forward_kernel(const InterpolateParams p, const T* __restrict__ attr, const T* __restrict__ rast,
                               const int32_t* __restrict__ tri, T* __restrict__ out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width, C = p.n_channels;
  if (i >= p.batch * hw) return;
  T* o = out + i * C;
  int64_t v[3];
  if (!pixel_vertices(p, rast, tri, i, v)) {
    for (int64_t c = 0; c < C; ++c) o[c] = T(0);
    return;
  }
  const T* a = attr + (p.attr_batch == 1 ? 0 : i / hw) * p.n_vertices * C;
  interpolate_pixel(a + v[0] * C, a + v[1] * C, a + v[2] * C, rast[i * 4], rast[i * 4 + 1], C, o);
}

template <typename T>
__global__ void backward_kernel(const InterpolateParams p, const T* __restrict__ attr, const T* __restrict__ rast,
                                const int32_t* __restrict__ tri, const T* __restrict__ d_out, T* d_attr,
                                T* __restrict__ d_rast) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width, C = p.n_channels;
  if (i >= p.batch * hw) return;
  int64_t v[3];
  if (!pixel_vertices(p, rast, tri, i, v)) {
    if (d_rast) d_rast[i * 4] = d_rast[i * 4 + 1] = d_rast[i * 4 + 2] = d_rast[i * 4 + 3] = T(0);
    return;
  }
  const int64_t off = (p.attr_batch == 1 ? 0 : i / hw) * p.n_vertices * C;
  const T* a = attr + off;
  T* g = d_attr ? d_attr + off : nullptr;
  AtomicAdd<T> add;
  T du_dv[2];
  interpolate_pixel_backward(a + v[0] * C, a + v[1] * C, a + v[2] * C, rast[i * 4], rast[i * 4 + 1], C, d_out + i * C,
                             g ? g + v[0] * C : nullptr, g ? g + v[1] * C : nullptr, g ? g + v[2] * C : nullptr,
                             add, du_dv);
  if (d_rast) {
    d_rast[i * 4] = du_dv[0];
    d_rast[i * 4 + 1] = du_dv[1];
    d_rast[i * 4 + 2] = d_rast[i * 4 + 3] = T(0);
  }
}

}  // namespace

template <typename T>
void interpolate_forward_cuda(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, T* out,
                              Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  forward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(p, attr, rast, tri, out);
  cuda::check_launch("interpolate forward_kernel");
}

template <typename T>
void interpolate_backward_cuda(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri,
                               const T* d_out, T* d_attr, T* d_rast, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  backward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(p, attr, rast, tri, d_out,
                                                                                        d_attr, d_rast);
  cuda::check_launch("interpolate backward_kernel");
}

#define CSDKIT_INSTANTIATE(T)                                                                                 \
  template void interpolate_forward_cuda<T>(const InterpolateParams&, const T*, const T*, const int32_t*, T*, \
                                            Device);                                                          \
  template void interpolate_backward_cuda<T>(const InterpolateParams&, const T*, const T*, const int32_t*,    \
                                             const T*, T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

}  // namespace raster
}  // namespace csdkit
