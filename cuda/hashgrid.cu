// Hash-grid encoding: CUDA kernels. The math is csdkit/hashgrid.h, shared with the CPU path;
// here are only launch shapes and atomics.
#include "csdkit/hashgrid.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace hashgrid {

namespace {

template <typename T>
struct AtomicAdd {
  __device__ void operator()(T* p, T v) const { atomicAdd(p, v); }
};

// One thread per (point, level): grid.y = level.
template <typename T, int D, int F>
__global__ void forward_kernel(const Layout L, int64_t n, const T* __restrict__ x, const T* __restrict__ params,
                               T* __restrict__ out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  level_forward<T, D, F>(L, l, x + i * D, params, out + (i * L.n_levels + l) * F);
}

template <typename T, int D, int F>
__global__ void backward_params_kernel(const Layout L, int64_t n, const T* __restrict__ x,
                                       const T* __restrict__ d_out, T* __restrict__ d_params) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  level_backward_params<T, D, F>(L, l, x + i * D, d_out + (i * L.n_levels + l) * F, d_params, AtomicAdd<T>{});
}

// One thread per point, all levels: d_x is written once per point (no atomics).
template <typename T, int D, int F>
__global__ void backward_input_kernel(const Layout L, int64_t n, const T* __restrict__ x,
                                      const T* __restrict__ params, const T* __restrict__ d_out,
                                      T* __restrict__ d_x) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T dx[D];
  for (int d = 0; d < D; ++d) dx[d] = T(0);
  for (int l = 0; l < L.n_levels; ++l)
    level_backward_input<T, D, F>(L, l, x + i * D, params, d_out + (i * L.n_levels + l) * F, dx);
  for (int d = 0; d < D; ++d) d_x[i * D + d] = mask_clamped(x[i * D + d], dx[d]);
}

constexpr int kThreads = 128;

}  // namespace

template <typename T>
void encode_forward_cuda(const Layout& L, int64_t n, const T* x, const T* params, T* out, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value;
    const dim3 grid(cuda::blocks_for(n, kThreads), L.n_levels);
    forward_kernel<T, D, F><<<grid, kThreads, 0, cuda::stream_of(dev)>>>(L, n, x, params, out);
  });
  cuda::check_launch("hashgrid forward_kernel");
}

template <typename T>
void encode_backward_cuda(const Layout& L, int64_t n, const T* x, const T* params, const T* d_out, T* d_params,
                          T* d_x, Device dev, bool accumulate) {
  cuda::DeviceGuard guard(dev.index);
  if (d_params && !accumulate)
    cuda::check(cudaMemsetAsync(d_params, 0, sizeof(T) * size_t(L.offsets[L.n_levels]) * L.n_features,
                                cuda::stream_of(dev)),
                "hashgrid backward: zeroing d_params");
  if (n == 0) return;
  dispatch_dims_features(L, [&](auto d, auto f) {
    constexpr int D = decltype(d)::value, F = decltype(f)::value;
    if (d_params) {
      const dim3 grid(cuda::blocks_for(n, kThreads), L.n_levels);
      backward_params_kernel<T, D, F><<<grid, kThreads, 0, cuda::stream_of(dev)>>>(L, n, x, d_out, d_params);
      cuda::check_launch("hashgrid backward_params_kernel");
    }
    if (d_x) {
      backward_input_kernel<T, D, F><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
          L, n, x, params, d_out, d_x);
      cuda::check_launch("hashgrid backward_input_kernel");
    }
  });
}

template void encode_forward_cuda<float>(const Layout&, int64_t, const float*, const float*, float*, Device);
template void encode_forward_cuda<double>(const Layout&, int64_t, const double*, const double*, double*, Device);
template void encode_backward_cuda<float>(const Layout&, int64_t, const float*, const float*, const float*,
                                          float*, float*, Device, bool);
template void encode_backward_cuda<double>(const Layout&, int64_t, const double*, const double*, const double*,
                                           double*, double*, Device, bool);

}  // namespace hashgrid
}  // namespace csdkit
