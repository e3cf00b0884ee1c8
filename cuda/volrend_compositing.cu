// Volume-rendering compositing: CUDA kernels (math in csdkit/volrend_compositing.h). Weights and
// packed accumulation run one thread per ray (no atomics); accumulation by unsorted ray indices
// runs one thread per sample with atomicAdd.
#include "csdkit/volrend_compositing.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace volrend {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void weights_forward_kernel(const WeightsArgs<T> a) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= a.n_rays) return;
  const int64_t begin = a.packed_info[2 * r], end = begin + a.packed_info[2 * r + 1];
  weights_forward_ray<T>(a.mode, begin, end, a.t_starts, a.t_ends, a.input, a.early_stop_eps, a.weights,
                         a.transmittance, a.alphas);
}

template <typename T>
__global__ void weights_backward_kernel(const WeightsBackwardArgs<T> a) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= a.n_rays) return;
  const int64_t begin = a.packed_info[2 * r], end = begin + a.packed_info[2 * r + 1];
  weights_backward_ray<T>(a.mode, begin, end, a.t_starts, a.t_ends, a.early_stop_eps, a.transmittance, a.alphas,
                          a.d_weights, a.d_transmittance, a.d_alphas, a.d_input, a.d_tau);
}

template <typename T>
__global__ void accumulate_packed_kernel(const AccumulateArgs<T> a) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= a.n_rays) return;
  const int64_t begin = a.packed_info[2 * r], end = begin + a.packed_info[2 * r + 1];
  accumulate_ray<T>(begin, end, a.channels, a.weights, a.values, a.out + r * a.channels);
}

template <typename T>
__global__ void accumulate_indexed_kernel(const AccumulateArgs<T> a) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= a.n_samples) return;
  const int64_t r = a.ray_indices[i];
  if (r < 0 || r >= a.n_rays) return;
  const int C = a.channels;
  const T w = a.weights[i];
  if (a.values) {
    for (int c = 0; c < C; ++c) atomicAdd(a.out + r * C + c, w * a.values[i * C + c]);
  } else {
    atomicAdd(a.out + r, w);
  }
}

template <typename T>
__global__ void accumulate_backward_packed_kernel(const AccumulateArgs<T> a) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= a.n_rays) return;
  const int64_t begin = a.packed_info[2 * r], end = begin + a.packed_info[2 * r + 1];
  accumulate_backward_ray<T>(begin, end, a.channels, a.weights, a.values, a.d_out + r * a.channels, a.d_weights,
                             a.d_values);
}

template <typename T>
__global__ void accumulate_backward_indexed_kernel(const AccumulateArgs<T> a) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= a.n_samples) return;
  const int64_t r = a.ray_indices[i];
  if (r < 0 || r >= a.n_rays) return;
  accumulate_backward_sample<T>(i, a.channels, a.weights, a.values, a.d_out + r * a.channels, a.d_weights,
                                a.d_values);
}

}  // namespace

template <typename T>
void weights_forward_cuda(const WeightsArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  weights_forward_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("volrend weights_forward_kernel");
}

template <typename T>
void weights_backward_cuda(const WeightsBackwardArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  weights_backward_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(a);
  cuda::check_launch("volrend weights_backward_kernel");
}

template <typename T>
void accumulate_forward_cuda(const AccumulateArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  cudaStream_t stream = cuda::stream_of(dev);
  if (a.packed_info) {
    accumulate_packed_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, stream>>>(a);
    cuda::check_launch("volrend accumulate_packed_kernel");
    return;
  }
  cuda::check(cudaMemsetAsync(a.out, 0, sizeof(T) * a.n_rays * a.channels, stream), "cudaMemsetAsync");
  if (a.n_samples == 0) return;
  accumulate_indexed_kernel<T><<<cuda::blocks_for(a.n_samples, kThreads), kThreads, 0, stream>>>(a);
  cuda::check_launch("volrend accumulate_indexed_kernel");
}

template <typename T>
void accumulate_backward_cuda(const AccumulateArgs<T>& a, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  cudaStream_t stream = cuda::stream_of(dev);
  if (a.packed_info) {
    accumulate_backward_packed_kernel<T><<<cuda::blocks_for(a.n_rays, kThreads), kThreads, 0, stream>>>(a);
    cuda::check_launch("volrend accumulate_backward_packed_kernel");
    return;
  }
  accumulate_backward_indexed_kernel<T><<<cuda::blocks_for(a.n_samples, kThreads), kThreads, 0, stream>>>(a);
  cuda::check_launch("volrend accumulate_backward_indexed_kernel");
}

#define CSDKIT_INSTANTIATE(T)                                                        \
  template void weights_forward_cuda<T>(const WeightsArgs<T>&, Device);              \
  template void weights_backward_cuda<T>(const WeightsBackwardArgs<T>&, Device);     \
  template void accumulate_forward_cuda<T>(const AccumulateArgs<T>&, Device);        \
  template void accumulate_backward_cuda<T>(const AccumulateArgs<T>&, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

}  // namespace volrend
}  // namespace csdkit
