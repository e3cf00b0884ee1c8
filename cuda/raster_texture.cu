// Texture sampling: CUDA kernels (one thread per pixel; texel gradients are scattered with
// atomicAdd). The math is csdkit/raster_texture.h, shared with the CPU path.
#include "csdkit/raster_texture.h"
#include "cuda_utils.cuh"

namespace csdkit {
namespace raster {

namespace {

constexpr int kThreads = 256;

// Mip level pointers passed by value to the kernels.
template <typename P>
struct LevelPointers {
  P level[kMaxMipLevels];
};

__device__ __forceinline__ int64_t level_offset(const TextureParams& p, int l, int64_t b) {
  return (p.tex_batch == 1 ? 0 : b) * int64_t(p.level_height[l]) * p.level_width[l] * p.n_channels;
}

template <typename T>
struct AtomicLevelAdd {
  T* const* level;  // this image's gradient pointer per level
  __device__ void operator()(int l, int64_t index, T value) const { atomicAdd(level[l] + index, value); }
};

template <typename T>
__global__ void forward_kernel(const TextureParams p, const LevelPointers<const T*> levels, const T* __restrict__ uv,
                               const T* __restrict__ uv_da, const T* __restrict__ bias, T* __restrict__ out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width;
  if (i >= p.batch * hw) return;
  const int64_t img = i / hw;
  const T* lv[kMaxMipLevels];
  for (int l = 0; l < p.n_levels; ++l) lv[l] = levels.level[l] + level_offset(p, l, img);
  T fd[4];
  texture_pixel(p, lv, uv[i * 2], uv[i * 2 + 1], pixel_uv_da(p, uv, uv_da, i, fd), bias ? bias + i : nullptr,
                out + i * p.n_channels);
}

template <typename T>
__global__ void backward_kernel(const TextureParams p, const LevelPointers<const T*> levels,
                                const LevelPointers<T*> d_levels, bool need_tex, const T* __restrict__ uv,
                                const T* __restrict__ uv_da, const T* __restrict__ bias, const T* __restrict__ d_out,
                                T* __restrict__ d_uv) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t hw = int64_t(p.height) * p.width;
  if (i >= p.batch * hw) return;
  const int64_t img = i / hw;
  const T* lv[kMaxMipLevels];
  T* dlv[kMaxMipLevels];
  for (int l = 0; l < p.n_levels; ++l) {
    lv[l] = levels.level[l] + level_offset(p, l, img);
    dlv[l] = need_tex ? d_levels.level[l] + level_offset(p, l, img) : nullptr;
  }
  AtomicLevelAdd<T> add{dlv};
  T g_uv[2];
  T fd[4];
  texture_pixel_backward(p, lv, uv[i * 2], uv[i * 2 + 1], pixel_uv_da(p, uv, uv_da, i, fd), bias ? bias + i : nullptr,
                         d_out + i * p.n_channels, need_tex, add, g_uv);
  if (d_uv) {
    d_uv[i * 2] = g_uv[0];
    d_uv[i * 2 + 1] = g_uv[1];
  }
}

}  // namespace

template <typename T>
void texture_forward_cuda(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da,
                          const T* bias, T* out, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  LevelPointers<const T*> lv{};
  for (int l = 0; l < p.n_levels; ++l) lv.level[l] = levels[l];
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  forward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(p, lv, uv, uv_da, bias,
                                                                                       out);
  cuda::check_launch("texture forward_kernel");
}

template <typename T>
void texture_backward_cuda(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da,
                           const T* bias, const T* d_out, T* const* d_levels, T* d_uv, Device dev) {
  cuda::DeviceGuard guard(dev.index);
  LevelPointers<const T*> lv{};
  LevelPointers<T*> dlv{};
  for (int l = 0; l < p.n_levels; ++l) {
    lv.level[l] = levels[l];
    dlv.level[l] = d_levels ? d_levels[l] : nullptr;
  }
  const int64_t n = p.batch * int64_t(p.height) * p.width;
  backward_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, cuda::stream_of(dev)>>>(
      p, lv, dlv, d_levels != nullptr, uv, uv_da, bias, d_out, d_uv);
  cuda::check_launch("texture backward_kernel");
}

#define CSDKIT_INSTANTIATE(T)                                                                                  \
  template void texture_forward_cuda<T>(const TextureParams&, const T* const*, const T*, const T*, const T*, T*, \
                                        Device);                                                               \
  template void texture_backward_cuda<T>(const TextureParams&, const T* const*, const T*, const T*, const T*,  \
                                         const T*, T* const*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

}  // namespace raster
}  // namespace csdkit
