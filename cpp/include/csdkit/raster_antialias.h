// csdkit/raster_antialias.h -- analytic antialiasing of a rendered image at silhouette edges
// (nvdiffrast's antialias), which also gives the vertex positions a gradient from visibility.
//
// For every pair of horizontally or vertically adjacent pixels whose triangle ids differ, the
// "front" pixel f is the one covered by a triangle (or, when both are, the one with the smaller z/w);
// o is the other one. The segment from f's pixel centre to o's crosses at most one edge of f's
// triangle t; when that edge is a silhouette edge (a boundary edge, or shared with a triangle that
// faces the other way in screen space), at distance s in [0, 1] from f's centre, the pair is blended
// as if each pixel were a unit box along the segment:
//   s >= 1/2: t reaches into o's box by a = s - 1/2:   out[o] += a * (c[f] - c[o])
//   s <  1/2: t leaves f's box uncovered by a = 1/2 - s: out[f] += a * (c[o] - c[f])
// (when the blends landing on one pixel add up to more than 1, they are divided by their total).
// Both branches give d out / d s = (c[f] - c[o]) on the blended pixel, and s is a smooth function of
// the edge's two clip-space vertices, so position gradients flow across silhouettes.
//
// Screen coordinates: X = (x/w * 0.5 + 0.5) * W, Y = (y/w * 0.5 + 0.5) * H; pixel (px, py) has its
// centre at (px + 0.5, py + 0.5) (the rasterizer's convention; row 0 is NDC y = -1).
//
// The CPU and CUDA kernels are race-free gathers over pixels: each pixel evaluates the (up to four)
// pairs it belongs to and keeps the blends that land on itself. The pure-PyTorch reference is
// python/csdkit/ops/reference/antialias.py.
#pragma once

#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/raster.h"

namespace csdkit {
namespace raster {

struct AntialiasParams {
  int64_t batch = 1;        // B: images, color / rast are [B, H, W, .]
  int64_t pos_batch = 1;    // 1 (positions shared by all images) or B: pos is [pos_batch, V, 4]
  int64_t n_vertices = 0;   // V
  int64_t n_channels = 0;   // C: color is [B, H, W, C]
  int64_t n_triangles = 0;  // T: tri and topology are [T, 3] int32
  int height = 0;           // H
  int width = 0;            // W
};

// One evaluated pixel pair. Valid only when `hit`.
template <typename T>
struct AntialiasPair {
  bool hit = false;
  int64_t front = 0, other = 0;  // pixel indices (b * H * W + y * W + x)
  int64_t target = 0, source = 0;  // out[target] += alpha * (c[source] - c[target])
  T alpha = T(0);
  int32_t va = 0, vb = 0;  // the silhouette edge's vertices
  // d s / d (x, y, w) of va and vb (clip space).
  T ds_a[3] = {T(0), T(0), T(0)}, ds_b[3] = {T(0), T(0), T(0)};
};

// ---- per-element math ---------------------------------------------------------------------------

// Screen coordinates (X, Y) of clip-space point p; false when w <= 0 or the result is not finite.
template <typename T>
CSDKIT_HD bool screen_of(const T* p, int width, int height, T* xy) {
  if (!(p[3] > T(0))) return false;
  xy[0] = (p[0] / p[3] * T(0.5) + T(0.5)) * T(width);
  xy[1] = (p[1] / p[3] * T(0.5) + T(0.5)) * T(height);
  return is_finite(xy[0]) && is_finite(xy[1]);
}

// Orientation of triangle t in screen space: +1, -1, or 0 when degenerate / not projectable.
template <typename T>
CSDKIT_HD int screen_facing(const T* pos, const int32_t* tri, int64_t t, int width, int height) {
  T s[3][2];
  for (int k = 0; k < 3; ++k)
    if (!screen_of(pos + int64_t(tri[3 * t + k]) * 4, width, height, s[k])) return 0;
  const T area = (s[1][0] - s[0][0]) * (s[2][1] - s[0][1]) - (s[1][1] - s[0][1]) * (s[2][0] - s[0][0]);
  return area > T(0) ? 1 : (area < T(0) ? -1 : 0);
}

// Evaluates the pair (p0, p1) with p1 = p0 + 1 along `axis` (0: x, 1: y); (x0, y0) is p0's pixel and
// `pos` the image's [V, 4] positions. See the file comment for the rule.
template <typename T>
CSDKIT_HD AntialiasPair<T> antialias_pair(const AntialiasParams& p, const T* rast, const T* pos, const int32_t* tri,
                                          const int32_t* topology, int64_t p0, int64_t p1, int axis, int64_t x0,
                                          int64_t y0) {
  AntialiasPair<T> r;
  const int64_t t0 = triangle_of(rast[p0 * 4 + 3], p.n_triangles);
  const int64_t t1 = triangle_of(rast[p1 * 4 + 3], p.n_triangles);
  if (t0 == t1) return r;
  bool front0;
  if (t0 < 0)
    front0 = false;
  else if (t1 < 0)
    front0 = true;
  else
    front0 = !(rast[p1 * 4 + 2] < rast[p0 * 4 + 2]);
  const int64_t t = front0 ? t0 : t1;
  const int facing = screen_facing(pos, tri, t, p.width, p.height);
  if (facing == 0) return r;
  // The segment: fixed coordinate cb across the axis, running from cf (front's centre) by dir.
  const T cb = T(axis == 0 ? y0 : x0) + T(0.5);
  const T cf = T(axis == 0 ? x0 : y0) + T(0.5) + (front0 ? T(0) : T(1));
  const T dir = front0 ? T(1) : T(-1);
  for (int k = 0; k < 3; ++k) {
    const int32_t ia = tri[3 * t + k], ib = tri[3 * t + (k + 1) % 3];
    const int32_t adj = topology[3 * t + k];
    if (adj >= 0 && adj < p.n_triangles && screen_facing(pos, tri, adj, p.width, p.height) == facing) continue;
    const T* pa = pos + int64_t(ia) * 4;
    const T* pb = pos + int64_t(ib) * 4;
    T sa[2], sb[2];
    if (!screen_of(pa, p.width, p.height, sa) || !screen_of(pb, p.width, p.height, sb)) continue;
    const T Aa = sa[axis], Ab = sa[1 - axis], Ba = sb[axis], Bb = sb[1 - axis];
    // Half-open crossing test so a segment through a vertex meets one of its two edges only.
    if (!((Ab <= cb && cb < Bb) || (Bb <= cb && cb < Ab))) continue;
    const T D = Bb - Ab;
    const T tt = (cb - Ab) / D;
    const T xs = Aa + tt * (Ba - Aa);
    const T s = (xs - cf) * dir;
    if (!(s >= T(0) && s <= T(1))) continue;
    r.hit = true;
    r.front = front0 ? p0 : p1;
    r.other = front0 ? p1 : p0;
    if (s >= T(0.5)) {
      r.target = r.other, r.source = r.front, r.alpha = s - T(0.5);
    } else {
      r.target = r.front, r.source = r.other, r.alpha = T(0.5) - s;
    }
    r.va = ia, r.vb = ib;
    // d s / d (screen) of the two vertices, along (a, b) axes.
    const T ds_Aa = dir * (T(1) - tt), ds_Ba = dir * tt;
    const T ds_Ab = dir * (Ba - Aa) * (cb - Bb) / (D * D);
    const T ds_Bb = -dir * (Ba - Aa) * (cb - Ab) / (D * D);
    // Screen -> clip: dX/dx = W / (2 w), dX/dw = -W x / (2 w^2) (same for Y with H, y).
    const T ds_a_xy[2] = {axis == 0 ? ds_Aa : ds_Ab, axis == 0 ? ds_Ab : ds_Aa};
    const T ds_b_xy[2] = {axis == 0 ? ds_Ba : ds_Bb, axis == 0 ? ds_Bb : ds_Ba};
    const T size[2] = {T(p.width), T(p.height)};
    r.ds_a[2] = r.ds_b[2] = T(0);
    for (int c = 0; c < 2; ++c) {
      r.ds_a[c] = ds_a_xy[c] * size[c] * T(0.5) / pa[3];
      r.ds_a[2] -= ds_a_xy[c] * size[c] * T(0.5) * pa[c] / (pa[3] * pa[3]);
      r.ds_b[c] = ds_b_xy[c] * size[c] * T(0.5) / pb[3];
      r.ds_b[2] -= ds_b_xy[c] * size[c] * T(0.5) * pb[c] / (pb[3] * pb[3]);
    }
    return r;
  }
  return r;
}

// Pixel i = (b, y, x) and its k-th neighbour pair (k: 0 left, 1 right, 2 up, 3 down) as (p0, p1, axis,
// x0, y0) with p1 = p0 + 1 along the axis; false at the image border.
CSDKIT_HD bool neighbour_pair(int64_t i, int k, int width, int height, int64_t* p0, int64_t* p1, int* axis,
                              int64_t* x0, int64_t* y0) {
  const int64_t x = i % width, y = (i / width) % height;
  switch (k) {
    case 0:
      if (x == 0) return false;
      *p0 = i - 1, *p1 = i, *axis = 0, *x0 = x - 1, *y0 = y;
      return true;
    case 1:
      if (x + 1 >= width) return false;
      *p0 = i, *p1 = i + 1, *axis = 0, *x0 = x, *y0 = y;
      return true;
    case 2:
      if (y == 0) return false;
      *p0 = i - width, *p1 = i, *axis = 1, *x0 = x, *y0 = y - 1;
      return true;
    default:
      if (y + 1 >= height) return false;
      *p0 = i, *p1 = i + width, *axis = 1, *x0 = x, *y0 = y;
      return true;
  }
}

// out[i] = color[i] + sum_j a_j (color[source_j] - color[i]) / max(1, sum_j a_j) over the pairs j of pixel i
// whose blend lands on i, and weight[i] = sum_j a_j. Up to four pairs can land on one pixel (a thin gap or
// sliver): dividing by the total keeps the result a convex combination of the inputs.
template <typename T>
CSDKIT_HD void antialias_pixel(const AntialiasParams& p, const T* color, const T* rast, const T* pos,
                               const int32_t* tri, const int32_t* topology, int64_t i, T* out, T* weight) {
  const int64_t C = p.n_channels;
  for (int64_t c = 0; c < C; ++c) out[c] = T(0);
  T total = T(0);
  for (int k = 0; k < 4; ++k) {
    int64_t p0, p1, x0, y0;
    int axis;
    if (!neighbour_pair(i, k, p.width, p.height, &p0, &p1, &axis, &x0, &y0)) continue;
    const AntialiasPair<T> r = antialias_pair(p, rast, pos, tri, topology, p0, p1, axis, x0, y0);
    if (!r.hit || r.target != i) continue;
    total += r.alpha;
    for (int64_t c = 0; c < C; ++c) out[c] += r.alpha * (color[r.source * C + c] - color[i * C + c]);
  }
  const T scale = total > T(1) ? T(1) / total : T(1);
  for (int64_t c = 0; c < C; ++c) out[c] = color[i * C + c] + out[c] * scale;
  *weight = total;
}

// Gradient of pixel i, from the forward's `out` and `weight`: d_color[i] (overwritten) from every pair i
// belongs to; for the pairs where i is p0 (right and down), d L / d s is passed to add_pos(vertex, ds[3],
// dL_ds) for both edge vertices.
template <typename T, typename AddPos>
CSDKIT_HD void antialias_pixel_backward(const AntialiasParams& p, const T* color, const T* rast, const T* pos,
                                        const int32_t* tri, const int32_t* topology, const T* out,
                                        const T* weight, const T* d_out, int64_t i, T* d_color,
                                        AddPos& add_pos) {
  const int64_t C = p.n_channels;
  if (d_color)
    for (int64_t c = 0; c < C; ++c) d_color[i * C + c] = d_out[i * C + c];
  for (int k = 0; k < 4; ++k) {
    int64_t p0, p1, x0, y0;
    int axis;
    if (!neighbour_pair(i, k, p.width, p.height, &p0, &p1, &axis, &x0, &y0)) continue;
    const AntialiasPair<T> r = antialias_pair(p, rast, pos, tri, topology, p0, p1, axis, x0, y0);
    if (!r.hit) continue;
    const int64_t m = r.target, n = r.source;
    const T total = weight[m];
    const bool normalized = total > T(1);
    const T scale = normalized ? T(1) / total : T(1);
    if (d_color) {
      if (m == i) {
        for (int64_t c = 0; c < C; ++c) d_color[i * C + c] -= scale * r.alpha * d_out[i * C + c];
      } else {
        for (int64_t c = 0; c < C; ++c) d_color[i * C + c] += scale * r.alpha * d_out[m * C + c];
      }
    }
    if (k == 1 || k == 3) {
      // d out[m] / d alpha = (c[n] - c[m]), or (c[n] - out[m]) / total once the blends are normalized.
      T dl_da = T(0);
      for (int64_t c = 0; c < C; ++c)
        dl_da += d_out[m * C + c] * (normalized ? (color[n * C + c] - out[m * C + c]) * scale
                                                : color[n * C + c] - color[m * C + c]);
      const T dl_ds = m == r.other ? dl_da : -dl_da;  // alpha = s - 1/2 on the other pixel, 1/2 - s on the front
      if (dl_ds != T(0)) {
        add_pos(r.va, r.ds_a, dl_ds);
        add_pos(r.vb, r.ds_b, dl_ds);
      }
    }
  }
}

// ---- kernels ------------------------------------------------------------------------------------
// color / out / d_out / d_color [B, H, W, C], weight [B, H, W] (the forward's per-pixel blend total, which
// the backward reads with `out`), rast [B, H, W, 4], pos / d_pos [pos_batch, V, 4], tri / topology [T, 3]
// int32 (topology[t, k]: the triangle across edge (tri[t, k], tri[t, k + 1 mod 3]), -1 for a boundary or
// non-manifold edge). d_color is overwritten, d_pos accumulated into (+=); pass nullptr for a gradient that
// is not needed.

template <typename T>
void antialias_forward(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                       const int32_t* topology, T* out, T* weight, Device dev = {});
template <typename T>
void antialias_backward(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                        const int32_t* topology, const T* out, const T* weight, const T* d_out, T* d_color,
                        T* d_pos, Device dev = {});

template <typename T>
void antialias_forward_cuda(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                            const int32_t* topology, T* out, T* weight, Device dev);
template <typename T>
void antialias_backward_cuda(const AntialiasParams& p, const T* color, const T* rast, const T* pos,
                             const int32_t* tri, const int32_t* topology, const T* out, const T* weight,
                             const T* d_out, T* d_color, T* d_pos, Device dev);

}  // namespace raster
}  // namespace csdkit
