// csdkit/raster_texture.h -- 2D texture sampling with nvdiffrast's conventions: nearest, bilinear
// and (trilinear) mipmapped filtering, wrap / clamp / zero boundaries, gradients w.r.t. the
// texture (every level) and the texture coordinates.
//
// Conventions: uv = (0, 0) is the outer corner of texel [0, 0]; texel (i, j) (row i, column j) has
// its centre at ((j + 0.5) / w, (i + 0.5) / h); u runs along the columns, v along the rows (row 0 of
// the texture is v = 0). The mip level of a pixel is 0.5 * log2 of the squared major axis of its
// footprint in level-0 texels (from uv_da = du/dX, du/dY, dv/dX, dv/dY), plus an optional bias,
// clamped to [0, n_levels - 1]. The caller supplies the mip pyramid (python: build_mipmaps, a 2x2
// box filter); the mip level carries no gradient.
#pragma once

#include <cmath>
#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/raster_math.h"

namespace csdkit {
namespace raster {

constexpr int kMaxMipLevels = 16;

enum TextureFilter : int { kNearest = 0, kLinear = 1, kLinearMipmapNearest = 2, kLinearMipmapLinear = 3 };
enum TextureBoundary : int { kWrap = 0, kClamp = 1, kZero = 2 };

struct TextureParams {
  int64_t batch = 1;      // B: uv is [B, H, W, 2], out [B, H, W, C]
  int64_t tex_batch = 1;  // 1 (texture shared by all images) or B
  int64_t n_channels = 0; // C
  int height = 0;         // H: rows of uv / out
  int width = 0;          // W: columns of uv / out
  int n_levels = 1;       // mip levels supplied (1..kMaxMipLevels); level l is [tex_batch, h_l, w_l, C]
  int level_height[kMaxMipLevels] = {};
  int level_width[kMaxMipLevels] = {};
  int filter = kLinear;   // TextureFilter
  int boundary = kWrap;   // TextureBoundary
  bool fd_derivatives = false;  // mipmaps without uv_da and bias: uv_da from finite differences of uv
};

// Throws std::invalid_argument for inconsistent parameters.
void check_texture_params(const TextureParams& p, const char* fn);

// ---- per-element math ---------------------------------------------------------------------------

CSDKIT_HD float floor_t(float x) { return floorf(x); }
CSDKIT_HD double floor_t(double x) { return ::floor(x); }
CSDKIT_HD float sqrt_t(float x) { return sqrtf(x); }
CSDKIT_HD double sqrt_t(double x) { return ::sqrt(x); }
CSDKIT_HD float log2_t(float x) { return log2f(x); }
CSDKIT_HD double log2_t(double x) { return ::log2(x); }

CSDKIT_HD int64_t wrap_index(int64_t i, int64_t n) {
  if (i < 0) i += n;  // bilinear taps of wrapped coordinates are at most one period away
  else if (i >= n) i -= n;
  if (i >= 0 && i < n) return i;
  const int64_t r = i % n;
  return r < 0 ? r + n : r;
}

// Bilinear footprint on a w x h level: texel indices (row-major y * w + x, -1 reads as zero), the
// weights fx, fy of the upper texels, and dx/du, dy/dv (0 where a clamp is active).
template <typename T>
struct Bilinear {
  int64_t idx[4];  // (x0, y0), (x1, y0), (x0, y1), (x1, y1)
  T fx, fy, dxdu, dydv;
};

template <typename T>
CSDKIT_HD Bilinear<T> bilinear_footprint(T u, T v, int w, int h, int boundary) {
  Bilinear<T> f;
  if (boundary == kWrap) {
    u = u - floor_t(u);
    v = v - floor_t(v);
  }
  T x = u * T(w) - T(0.5);
  T y = v * T(h) - T(0.5);
  f.dxdu = T(w);
  f.dydv = T(h);
  if (boundary == kClamp) {
    if (!(x >= T(0) && x <= T(w - 1))) f.dxdu = T(0);
    if (!(y >= T(0) && y <= T(h - 1))) f.dydv = T(0);
    x = x < T(0) ? T(0) : (x > T(w - 1) ? T(w - 1) : x);
    y = y < T(0) ? T(0) : (y > T(h - 1) ? T(h - 1) : y);
  }
  const T x0f = floor_t(x), y0f = floor_t(y);
  f.fx = x - x0f;
  f.fy = y - y0f;
  if (!is_finite(x0f) || !is_finite(y0f)) {  // NaN / inf coordinates read zero
    f.idx[0] = f.idx[1] = f.idx[2] = f.idx[3] = -1;
    f.fx = f.fy = f.dxdu = f.dydv = T(0);
    return f;
  }
  // Far outside the texture (zero/clamp modes never reach here with huge values after clamping).
  const T lim = T(int64_t(1) << 40);
  const int64_t x0 = int64_t(x0f < -lim ? -lim : (x0f > lim ? lim : x0f));
  const int64_t y0 = int64_t(y0f < -lim ? -lim : (y0f > lim ? lim : y0f));
  int64_t x1 = x0 + 1, y1 = y0 + 1;
  if (boundary == kClamp) {
    if (x1 > w - 1) x1 = w - 1;
    if (y1 > h - 1) y1 = h - 1;
  }
  const int64_t xs[2] = {x0, x1}, ys[2] = {y0, y1};
  for (int k = 0; k < 4; ++k) {
    int64_t ix = xs[k & 1], iy = ys[k >> 1];
    if (boundary == kWrap) {
      ix = wrap_index(ix, w);
      iy = wrap_index(iy, h);
    } else if (ix < 0 || ix >= w || iy < 0 || iy >= h) {
      f.idx[k] = -1;
      continue;
    }
    f.idx[k] = iy * w + ix;
  }
  return f;
}

// Texel index for nearest filtering (-1 reads as zero).
template <typename T>
CSDKIT_HD int64_t nearest_index(T u, T v, int w, int h, int boundary) {
  if (boundary == kWrap) {
    u = u - floor_t(u);
    v = v - floor_t(v);
  }
  const T xf = floor_t(u * T(w)), yf = floor_t(v * T(h));
  if (!is_finite(xf) || !is_finite(yf)) return -1;
  const bool inside = xf >= T(0) && xf < T(w) && yf >= T(0) && yf < T(h);
  if (!inside && boundary == kZero) return -1;
  const int64_t ix = xf < T(0) ? 0 : (xf > T(w - 1) ? w - 1 : int64_t(xf));
  const int64_t iy = yf < T(0) ? 0 : (yf > T(h - 1) ? h - 1 : int64_t(yf));
  return iy * w + ix;
}

// uv_da of pixel (py, px) by finite differences of uv between neighbouring pixels (central inside
// the image, one-sided at its border): uv_img is the image's [H, W, 2] block.
template <typename T>
CSDKIT_HD void uv_fd_derivatives(const T* uv_img, int64_t py, int64_t px, int height, int width, T* da) {
  for (int c = 0; c < 2; ++c) {
    const T* q = uv_img + c;
    T dx = T(0), dy = T(0);
    if (width > 1) {
      if (px == 0) dx = q[(py * width + 1) * 2] - q[(py * width) * 2];
      else if (px == width - 1) dx = q[(py * width + px) * 2] - q[(py * width + px - 1) * 2];
      else dx = (q[(py * width + px + 1) * 2] - q[(py * width + px - 1) * 2]) * T(0.5);
    }
    if (height > 1) {
      if (py == 0) dy = q[(width + px) * 2] - q[px * 2];
      else if (py == height - 1) dy = q[(py * width + px) * 2] - q[((py - 1) * width + px) * 2];
      else dy = (q[((py + 1) * width + px) * 2] - q[((py - 1) * width + px) * 2]) * T(0.5);
    }
    da[2 * c] = dx;
    da[2 * c + 1] = dy;
  }
}

// The uv_da of pixel i: the given array, finite differences (p.fd_derivatives), or none.
template <typename T>
CSDKIT_HD const T* pixel_uv_da(const TextureParams& p, const T* uv, const T* uv_da, int64_t i, T* scratch) {
  if (uv_da) return uv_da + i * 4;
  if (!p.fd_derivatives || p.filter < kLinearMipmapNearest) return nullptr;
  const int64_t hw = int64_t(p.height) * p.width, r = i % hw;
  uv_fd_derivatives(uv + (i - r) * 2, r / p.width, r % p.width, p.height, p.width, scratch);
  return scratch;
}

// Mip levels l0, l1 and the blend weight of l1 for one pixel.
template <typename T>
CSDKIT_HD void mip_levels(const TextureParams& p, const T* uv_da, const T* bias, int* l0, int* l1, T* frac) {
  const int max_level = p.n_levels - 1;
  T level = T(0);
  if (uv_da) {
    const T ws = T(p.level_width[0]), hs = T(p.level_height[0]);
    const T dsdx = uv_da[0] * ws, dsdy = uv_da[1] * ws, dtdx = uv_da[2] * hs, dtdy = uv_da[3] * hs;
    const T a = dsdx * dsdx + dtdx * dtdx;
    const T b = dsdy * dsdy + dtdy * dtdy;
    const T c = dsdx * dsdy + dtdx * dtdy;
    const T l2b = T(0.5) * (a + b);
    const T l2a = sqrt_t(T(0.25) * (a - b) * (a - b) + c * c);
    level = T(0.5) * log2_t(l2b + l2a);
  }
  if (bias) level += *bias;
  if (level != level) level = T(0);  // NaN -> 0 (a zero footprint gives -inf -> 0 below)
  level = level < T(0) ? T(0) : (level > T(max_level) ? T(max_level) : level);
  *l0 = int(floor_t(level));
  *l1 = *l0 + 1 > max_level ? max_level : *l0 + 1;
  *frac = p.filter == kLinearMipmapLinear ? level - T(*l0) : T(0);
}

template <typename T>
CSDKIT_HD T bilerp_channel(const T* tex, const Bilinear<T>& f, int64_t C, int64_t c) {
  const T t00 = f.idx[0] >= 0 ? tex[f.idx[0] * C + c] : T(0);
  const T t10 = f.idx[1] >= 0 ? tex[f.idx[1] * C + c] : T(0);
  const T t01 = f.idx[2] >= 0 ? tex[f.idx[2] * C + c] : T(0);
  const T t11 = f.idx[3] >= 0 ? tex[f.idx[3] * C + c] : T(0);
  const T top = t00 + f.fx * (t10 - t00);
  const T bot = t01 + f.fx * (t11 - t01);
  return top + f.fy * (bot - top);
}

// out[C] for one pixel. `levels[l]` points at this pixel's texture (batch already applied).
template <typename T>
CSDKIT_HD void texture_pixel(const TextureParams& p, const T* const* levels, T u, T v, const T* uv_da,
                             const T* bias, T* out) {
  const int64_t C = p.n_channels;
  if (p.filter == kNearest) {
    const int64_t i = nearest_index(u, v, p.level_width[0], p.level_height[0], p.boundary);
    for (int64_t c = 0; c < C; ++c) out[c] = i >= 0 ? levels[0][i * C + c] : T(0);
    return;
  }
  int l0 = 0, l1 = 0;
  T frac = T(0);
  if (p.filter != kLinear) mip_levels(p, uv_da, bias, &l0, &l1, &frac);
  const Bilinear<T> f0 = bilinear_footprint(u, v, p.level_width[l0], p.level_height[l0], p.boundary);
  if (frac > T(0)) {
    const Bilinear<T> f1 = bilinear_footprint(u, v, p.level_width[l1], p.level_height[l1], p.boundary);
    for (int64_t c = 0; c < C; ++c) {
      const T a = bilerp_channel(levels[l0], f0, C, c), b = bilerp_channel(levels[l1], f1, C, c);
      out[c] = (T(1) - frac) * a + frac * b;
    }
  } else {
    for (int64_t c = 0; c < C; ++c) out[c] = bilerp_channel(levels[l0], f0, C, c);
  }
}

// Adds the gradients of g . out: into the texels of the levels through add(level, index, value)
// (when d_levels is requested) and returns d/du, d/dv in d_uv[2].
template <typename T, typename Add>
CSDKIT_HD void texture_pixel_backward(const TextureParams& p, const T* const* levels, T u, T v, const T* uv_da,
                                      const T* bias, const T* g, bool need_tex, Add& add, T* d_uv) {
  const int64_t C = p.n_channels;
  d_uv[0] = d_uv[1] = T(0);
  if (p.filter == kNearest) {
    const int64_t i = nearest_index(u, v, p.level_width[0], p.level_height[0], p.boundary);
    if (need_tex && i >= 0)
      for (int64_t c = 0; c < C; ++c) add(0, i * C + c, g[c]);
    return;
  }
  int l[2] = {0, 0};
  T frac = T(0);
  if (p.filter != kLinear) mip_levels(p, uv_da, bias, &l[0], &l[1], &frac);
  const T lw[2] = {frac > T(0) ? T(1) - frac : T(1), frac};
  for (int k = 0; k < (frac > T(0) ? 2 : 1); ++k) {
    const T* tex = levels[l[k]];
    const Bilinear<T> f = bilinear_footprint(u, v, p.level_width[l[k]], p.level_height[l[k]], p.boundary);
    const T w[4] = {(T(1) - f.fx) * (T(1) - f.fy), f.fx * (T(1) - f.fy), (T(1) - f.fx) * f.fy, f.fx * f.fy};
    T gx = T(0), gy = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const T y = g[c] * lw[k];
      const T t00 = f.idx[0] >= 0 ? tex[f.idx[0] * C + c] : T(0);
      const T t10 = f.idx[1] >= 0 ? tex[f.idx[1] * C + c] : T(0);
      const T t01 = f.idx[2] >= 0 ? tex[f.idx[2] * C + c] : T(0);
      const T t11 = f.idx[3] >= 0 ? tex[f.idx[3] * C + c] : T(0);
      gx += y * ((T(1) - f.fy) * (t10 - t00) + f.fy * (t11 - t01));
      gy += y * ((T(1) - f.fx) * (t01 - t00) + f.fx * (t11 - t10));
      if (need_tex)
        for (int q = 0; q < 4; ++q)
          if (f.idx[q] >= 0) add(l[k], f.idx[q] * C + c, w[q] * y);
    }
    d_uv[0] += gx * f.dxdu;
    d_uv[1] += gy * f.dydv;
  }
}

// ---- kernels ------------------------------------------------------------------------------------
// levels[l]: [tex_batch, h_l, w_l, C]; uv [B, H, W, 2]; uv_da [B, H, W, 4] or null; bias [B, H, W]
// or null; out / d_out [B, H, W, C]; d_levels[l] like levels[l] (accumulated into: +=, all null
// when not needed); d_uv [B, H, W, 2] (overwritten, null when not needed).

template <typename T>
void texture_forward(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                     T* out, Device dev = {});
template <typename T>
void texture_backward(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da, const T* bias,
                      const T* d_out, T* const* d_levels, T* d_uv, Device dev = {});

template <typename T>
void texture_forward_cuda(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da,
                          const T* bias, T* out, Device dev);
template <typename T>
void texture_backward_cuda(const TextureParams& p, const T* const* levels, const T* uv, const T* uv_da,
                           const T* bias, const T* d_out, T* const* d_levels, T* d_uv, Device dev);

}  // namespace raster
}  // namespace csdkit
