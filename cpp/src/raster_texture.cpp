// Texture sampling: argument checks, dispatch and the CPU kernels.
#include "csdkit/raster_texture.h"

#include <string>
#include <vector>

#include "csdkit/parallel.h"
#include "raster_scatter.h"

namespace csdkit {
namespace raster {

void check_texture_params(const TextureParams& p, const char* fn) {
  check_arg(p.batch >= 1, fn, "batch must be >= 1, got " + std::to_string(p.batch));
  check_arg(p.tex_batch == 1 || p.tex_batch == p.batch, fn,
            "tex_batch must be 1 or batch (" + std::to_string(p.batch) + "), got " + std::to_string(p.tex_batch));
  check_arg(p.n_channels >= 1, fn, "n_channels must be >= 1, got " + std::to_string(p.n_channels));
  check_arg(p.height >= 1 && p.width >= 1, fn,
            "resolution must be >= 1, got " + std::to_string(p.height) + "x" + std::to_string(p.width));
  check_arg(p.n_levels >= 1 && p.n_levels <= kMaxMipLevels, fn,
            "n_levels must be in [1, " + std::to_string(kMaxMipLevels) + "], got " + std::to_string(p.n_levels));
  for (int l = 0; l < p.n_levels; ++l)
    check_arg(p.level_height[l] >= 1 && p.level_width[l] >= 1, fn,
              "mip level " + std::to_string(l) + " is empty (" + std::to_string(p.level_height[l]) + "x" +
                  std::to_string(p.level_width[l]) + ")");
  check_arg(p.filter >= kNearest && p.filter <= kLinearMipmapLinear, fn,
            "filter must be 0..3, got " + std::to_string(p.filter));
  check_arg(p.boundary >= kWrap && p.boundary <= kZero, fn,
            "boundary must be 0..2, got " + std::to_string(p.boundary));
}

namespace {

// Element offset of image b's texture in level l.
inline int64_t level_offset(const TextureParams& p, int l, int64_t b) {
  return (p.tex_batch == 1 ? 0 : b) * int64_t(p.level_height[l]) * p.level_width[l] * p.n_channels;
}

template <typename T>
void forward_cpu(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                 T* out) {
  const int64_t HW = int64_t(p.height) * p.width, C = p.n_channels;
  parallel_for(p.batch * HW, 2048, [&](int64_t b, int64_t e) {
    const T* lv[kMaxMipLevels];
    int64_t img = -1;
    for (int64_t i = b; i < e; ++i) {
      if (i / HW != img) {
        img = i / HW;
        for (int l = 0; l < p.n_levels; ++l) lv[l] = levels[l] + level_offset(p, l, img);
      }
      T fd[4];
      texture_pixel(p, lv, uv[i * 2], uv[i * 2 + 1], pixel_uv_da(p, uv, uv_da, i, fd), bias ? bias + i : nullptr,
                    out + i * C);
    }
  });
}

// Accumulates texel gradients into one flat buffer holding every level's gradient.
template <typename T>
struct FlatAdd {
  T* acc;
  const int64_t* offset;  // per level, including the image's batch offset
  void operator()(int level, int64_t index, T value) const { acc[offset[level] + index] += value; }
};

template <typename T>
void backward_cpu(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                  const T* d_out, T* const* d_levels, T* d_uv) {
  const int64_t HW = int64_t(p.height) * p.width, C = p.n_channels, n_pix = p.batch * HW;
  const bool need_tex = d_levels != nullptr && d_levels[0] != nullptr;
  int64_t level_start[kMaxMipLevels + 1] = {0};
  for (int l = 0; l < p.n_levels; ++l)
    level_start[l + 1] = level_start[l] + p.tex_batch * int64_t(p.level_height[l]) * p.level_width[l] * C;
  auto pixels = [&](int64_t b, int64_t e, T* acc) {
    const T* lv[kMaxMipLevels];
    int64_t off[kMaxMipLevels];
    int64_t img = -1;
    for (int64_t i = b; i < e; ++i) {
      if (i / HW != img) {
        img = i / HW;
        for (int l = 0; l < p.n_levels; ++l) {
          lv[l] = levels[l] + level_offset(p, l, img);
          off[l] = level_start[l] + level_offset(p, l, img);
        }
      }
      FlatAdd<T> add{acc, off};
      T g_uv[2];
      T fd[4];
      texture_pixel_backward(p, lv, uv[i * 2], uv[i * 2 + 1], pixel_uv_da(p, uv, uv_da, i, fd),
                             bias ? bias + i : nullptr, d_out + i * C, need_tex && acc != nullptr, add, g_uv);
      if (d_uv) {
        d_uv[i * 2] = g_uv[0];
        d_uv[i * 2 + 1] = g_uv[1];
      }
    }
  };
  if (!need_tex) {
    parallel_for(n_pix, 2048, [&](int64_t b, int64_t e) { pixels(b, e, nullptr); });
    return;
  }
  const int64_t size = level_start[p.n_levels];
  chunked_scatter<T>(n_pix, 4096, size, p.n_levels == 1 ? d_levels[0] : nullptr, pixels, [&](const T* total) {
    for (int l = 0; l < p.n_levels; ++l)
      add_into(d_levels[l], total + level_start[l], level_start[l + 1] - level_start[l]);
  });
}

}  // namespace

template <typename T>
void texture_forward(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                     T* out, Device dev) {
  const char* fn = "raster::texture_forward";
  check_texture_params(p, fn);
  check_arg(levels && uv && out, fn, "a required pointer is null");
  for (int l = 0; l < p.n_levels; ++l) check_arg(levels[l] != nullptr, fn, "a mip level pointer is null");
  if (dev.is_cuda())
    texture_forward_cuda<T>(p, levels, uv, uv_da, bias, out, dev);
  else
    forward_cpu<T>(p, levels, uv, uv_da, bias, out);
}

template <typename T>
void texture_backward(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                      const T* d_out, T* const* d_levels, T* d_uv, Device dev) {
  const char* fn = "raster::texture_backward";
  check_texture_params(p, fn);
  check_arg(levels && uv && d_out, fn, "a required pointer is null");
  const bool need_tex = d_levels != nullptr && d_levels[0] != nullptr;
  if (need_tex)
    for (int l = 0; l < p.n_levels; ++l) check_arg(d_levels[l] != nullptr, fn, "a d_levels pointer is null");
  if (!need_tex && !d_uv) return;
  if (dev.is_cuda())
    texture_backward_cuda<T>(p, levels, uv, uv_da, bias, d_out, need_tex ? d_levels : nullptr, d_uv, dev);
  else
    backward_cpu<T>(p, levels, uv, uv_da, bias, d_out, need_tex ? d_levels : nullptr, d_uv);
}

#define CSDKIT_INSTANTIATE(T)                                                                                 \
  template void texture_forward<T>(const TextureParams&, const T* const*, const T*, const T*, const T*, T*,   \
                                   Device);                                                                   \
  template void texture_backward<T>(const TextureParams&, const T* const*, const T*, const T*, const T*,      \
                                    const T*, T* const*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void texture_forward_cuda(const TextureParams&, const T* const*, const T*, const T*, const T*, T*, Device) {
  throw std::runtime_error("raster::texture_forward(): csdkit was not compiled with CUDA support");
}
template <typename T>
void texture_backward_cuda(const TextureParams&, const T* const*, const T*, const T*, const T*, const T*,
                           T* const*, T*, Device) {
  throw std::runtime_error("raster::texture_backward(): csdkit was not compiled with CUDA support");
}
#define CSDKIT_INSTANTIATE(T)                                                                                  \
  template void texture_forward_cuda<T>(const TextureParams&, const T* const*, const T*, const T*, const T*, T*, \
                                        Device);                                                               \
  template void texture_backward_cuda<T>(const TextureParams&, const T* const*, const T*, const T*, const T*,  \
                                         const T*, T* const*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE
#endif

}  // namespace raster
}  // namespace csdkit
