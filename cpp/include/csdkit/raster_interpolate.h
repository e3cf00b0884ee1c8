// csdkit/raster_interpolate.h -- barycentric interpolation of vertex attributes over a rasterized
// image (nvdiffrast's interpolate): out = u * a[i0] + v * a[i1] + (1 - u - v) * a[i2], with
// (u, v, ., id + 1) from rasterize() and (i0, i1, i2) = tri[id]; 0 where id + 1 == 0.
#pragma once

#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/raster.h"

namespace csdkit {
namespace raster {

struct InterpolateParams {
  int64_t batch = 1;        // B: images, rast is [B, H, W, 4]
  int64_t attr_batch = 1;   // 1 (attributes shared by all images) or B
  int64_t n_vertices = 0;   // V: attr is [attr_batch, V, C]
  int64_t n_channels = 0;   // C
  int64_t n_triangles = 0;  // T: tri is [T, 3] int32
  int height = 0;           // H
  int width = 0;            // W
};

// ---- per-element math ---------------------------------------------------------------------------

template <typename T>
CSDKIT_HD void interpolate_pixel(const T* a0, const T* a1, const T* a2, T u, T v, int64_t C, T* out) {
  const T w = T(1) - u - v;
  for (int64_t c = 0; c < C; ++c) out[c] = u * a0[c] + v * a1[c] + w * a2[c];
}

// Gradient of g . out: d/du and d/dv into du_dv[2]; when g0 is not null, the attribute gradients
// of the three vertices are added to g0, g1, g2 through add(ptr, value) (+= or atomicAdd).
template <typename T, typename Add>
CSDKIT_HD void interpolate_pixel_backward(const T* a0, const T* a1, const T* a2, T u, T v, int64_t C, const T* g,
                                          T* g0, T* g1, T* g2, Add& add, T* du_dv) {
  const T w = T(1) - u - v;
  T gu = T(0), gv = T(0);
  for (int64_t c = 0; c < C; ++c) {
    const T y = g[c];
    gu += y * (a0[c] - a2[c]);
    gv += y * (a1[c] - a2[c]);
    if (g0) {
      add(g0 + c, u * y);
      add(g1 + c, v * y);
      add(g2 + c, w * y);
    }
  }
  du_dv[0] = gu;
  du_dv[1] = gv;
}

// ---- kernels ------------------------------------------------------------------------------------
// attr [attr_batch, V, C], rast [B, H, W, 4], tri [T, 3], out / d_out [B, H, W, C],
// d_attr [attr_batch, V, C] (accumulated into: +=), d_rast [B, H, W, 4] (overwritten; channels
// 2 and 3 are 0). Pass nullptr for a gradient that is not needed.

template <typename T>
void interpolate_forward(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, T* out,
                         Device dev = {});
template <typename T>
void interpolate_backward(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri,
                          const T* d_out, T* d_attr, T* d_rast, Device dev = {});

template <typename T>
void interpolate_forward_cuda(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, T* out,
                              Device dev);
template <typename T>
void interpolate_backward_cuda(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri,
                               const T* d_out, T* d_attr, T* d_rast, Device dev);

}  // namespace raster
}  // namespace csdkit
