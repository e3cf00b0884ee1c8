// csdkit/raster.h -- triangle rasterization with nvdiffrast's output conventions.
//
// rasterize() writes, for each pixel of B images, (u, v, z/w, triangle_id + 1) of the nearest
// triangle (all zero where none is hit). The exact algorithm (the spec is the pure-PyTorch
// reference python/csdkit/ops/reference/rasterize.py, which these kernels match bit for bit in
// coverage):
//   1. Guard band: a vertex is projectable when w > 0 and g_x w -+ x >= 0, g_y w -+ y >= 0 with
//      g = 2**21 / size - 1. Triangles with an unprojectable vertex are clipped against those four
//      planes in homogeneous space (intersections computed from the inside vertex towards the
//      outside one, so shared edges clip identically) and fan-triangulated.
//   2. Snapping to 8 sub-pixel bits: X = floor((x/w * 0.5 + 0.5) * W * 256 + 0.5) in double.
//      Pixel (px, py) has its centre at (256 px + 128, 256 py + 128); row 0 is NDC y = -1.
//   3. Coverage by exact int64 edge functions; a centre on an edge belongs to the triangle for
//      which the edge is an owner edge (dy > 0, or dy == 0 and dx < 0, after orienting the
//      triangle counter-clockwise): closed meshes have no cracks and no double hits.
//   4. Depth z/w interpolated with the snapped screen-space barycentrics; fragments outside
//      [-1, 1] are clipped; the smallest depth wins, ties go to the lower triangle index.
//   5. Resolve: perspective-correct barycentrics of the pixel centre from the unsnapped clip-space
//      vertices (homogeneous 2D edge functions), differentiable w.r.t. the positions.
#pragma once

#include <cmath>
#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/raster_math.h"

namespace csdkit {
namespace raster {

constexpr int kSubpixelBits = 8;
constexpr int64_t kSubpixel = int64_t(1) << kSubpixelBits;
constexpr double kGuardBandPixels = double(1 << 20);
constexpr int kMaxResolution = 16384;
constexpr int kMaxClipVertices = 9;  // a triangle clipped by 4 planes has at most 7 vertices

// The problem shared by every raster kernel.
struct Params {
  int64_t batch = 1;        // B: number of images
  int64_t n_vertices = 0;   // V: pos is [B, V, 4] (x, y, z, w) clip-space positions
  int64_t n_triangles = 0;  // T: tri is [T, 3] int32 vertex indices, shared by all images
  int height = 0;           // H: image rows (row 0 is NDC y = -1)
  int width = 0;            // W: image columns
};

// Throws std::invalid_argument for sizes out of range.
void check_params(const Params& p, const char* fn);

// ---- per-element math, shared by the CPU and CUDA kernels --------------------------------------

// Guard-band half-width in NDC units for an image axis of `size` pixels.
CSDKIT_HD double guard_band(int size) { return 2.0 * kGuardBandPixels / double(size) - 1.0; }

// Signed distance of clip-space point p to guard-band plane k (inside when >= 0).
template <typename T>
CSDKIT_HD T clip_distance(int k, const T* p, T gx, T gy) {
  switch (k) {
    case 0: return sub_rn(mul_rn(gx, p[3]), p[0]);
    case 1: return add_rn(mul_rn(gx, p[3]), p[0]);
    case 2: return sub_rn(mul_rn(gy, p[3]), p[1]);
    default: return add_rn(mul_rn(gy, p[3]), p[1]);
  }
}

// Whether p can be projected and snapped without clipping (NaN coordinates are not).
template <typename T>
CSDKIT_HD bool projectable(const T* p, T gx, T gy) {
  if (!(p[3] > T(0))) return false;
  for (int k = 0; k < 4; ++k)
    if (!(clip_distance(k, p, gx, gy) >= T(0))) return false;
  return true;
}

// Fixed-point screen coordinate of NDC value x/w on an axis of `size` pixels.
CSDKIT_HD int64_t snap_coordinate(double x, double w, int size) {
  const double q = x / w;
  const double t = add_rn(mul_rn(q, 0.5), 0.5);
  return static_cast<int64_t>(floor(add_rn(mul_rn(t, double(int64_t(size) * kSubpixel)), 0.5)));
}

// A triangle in snapped screen space with the z/w of its vertices.
template <typename T>
struct ScreenTri {
  int64_t X[3], Y[3];
  T z[3];
};

template <typename T>
CSDKIT_HD void snap_vertex(const T* p, int width, int height, ScreenTri<T>* t, int i) {
  t->X[i] = snap_coordinate(double(p[0]), double(p[3]), width);
  t->Y[i] = snap_coordinate(double(p[1]), double(p[3]), height);
  t->z[i] = p[2] / p[3];
}

// Sutherland-Hodgman clipping of triangle (p0, p1, p2) by the guard band. Writes the polygon's
// vertices to out and returns their number (0 when nothing is left).
template <typename T>
CSDKIT_HD int clip_triangle(const T* p0, const T* p1, const T* p2, T gx, T gy, T (*out)[4]) {
  T buf[kMaxClipVertices][4];
  T(*src)[4] = out;
  T(*dst)[4] = buf;
  for (int c = 0; c < 4; ++c) {
    src[0][c] = p0[c];
    src[1][c] = p1[c];
    src[2][c] = p2[c];
  }
  int n = 3;
  for (int k = 0; k < 4 && n > 0; ++k) {
    int m = 0;
    for (int i = 0; i < n; ++i) {
      const T* a = src[i];
      const T* b = src[(i + 1) % n];
      const T da = clip_distance(k, a, gx, gy), db = clip_distance(k, b, gx, gy);
      const bool ina = da >= T(0), inb = db >= T(0);
      if (ina) {
        for (int c = 0; c < 4; ++c) dst[m][c] = a[c];
        ++m;
      }
      if (ina != inb) {
        const T* pi = ina ? a : b;  // always from the inside point towards the outside one
        const T* po = ina ? b : a;
        const T di = ina ? da : db, dout = ina ? db : da;
        const T t = di / sub_rn(di, dout);
        for (int c = 0; c < 4; ++c) dst[m][c] = add_rn(pi[c], mul_rn(t, sub_rn(po[c], pi[c])));
        ++m;
      }
    }
    T(*tmp)[4] = src;
    src = dst;
    dst = tmp;
    n = m;
  }
  if (src != out)
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < 4; ++c) out[i][c] = src[i][c];
  return n;
}

// Everything the pixel loop needs about one snapped triangle.
template <typename T>
struct TriSetup {
  int64_t x0, x1, y0, y1;  // inclusive pixel bounding box, clipped to the image and row band
  int64_t e[3];            // biased edge functions at the centre of pixel (x0, y0): covered iff all >= 0
  int64_t sx[3], sy[3];    // edge function increments per pixel step along x and y
  int64_t bias[3];         // 1 for non-owner edges (e_exact = e + bias), else 0
  T inv_area, z0, dz1, dz2;
};

// Inclusive range of the pixels whose centres lie inside the snapped bounds [xmin, xmax] x
// [ymin, ymax], clipped to the image columns and the rows [row_begin, row_end). False if empty:
// most small triangles contain no pixel centre at all, so this cheap test comes first.
CSDKIT_HD bool pixel_bounds(int64_t xmin, int64_t xmax, int64_t ymin, int64_t ymax, int width, int row_begin,
                            int row_end, int64_t* x0, int64_t* x1, int64_t* y0, int64_t* y1) {
  const int64_t half = kSubpixel / 2;
  *x0 = ceil_div(xmin - half, kSubpixel);
  *x1 = floor_div(xmax - half, kSubpixel);
  *y0 = ceil_div(ymin - half, kSubpixel);
  *y1 = floor_div(ymax - half, kSubpixel);
  if (*x0 < 0) *x0 = 0;
  if (*x1 > width - 1) *x1 = width - 1;
  if (*y0 < row_begin) *y0 = row_begin;
  if (*y1 > row_end - 1) *y1 = row_end - 1;
  return *x0 <= *x1 && *y0 <= *y1;
}

// Orients, bounds and sets up the edge functions of t for rows [row_begin, row_end). Returns
// false when no pixel centre there can be covered (zero area or empty bounding box).
template <typename T>
CSDKIT_HD bool setup_triangle(const ScreenTri<T>& t, int width, int row_begin, int row_end, TriSetup<T>* s) {
  if (!pixel_bounds(min3(t.X[0], t.X[1], t.X[2]), max3(t.X[0], t.X[1], t.X[2]), min3(t.Y[0], t.Y[1], t.Y[2]),
                    max3(t.Y[0], t.Y[1], t.Y[2]), width, row_begin, row_end, &s->x0, &s->x1, &s->y0, &s->y1))
    return false;
  int64_t area = (t.X[1] - t.X[0]) * (t.Y[2] - t.Y[0]) - (t.Y[1] - t.Y[0]) * (t.X[2] - t.X[0]);
  if (area == 0) return false;
  // Counter-clockwise order of the vertices: (0, 1, 2), or (0, 2, 1) for a negative area.
  const int o[3] = {0, area > 0 ? 1 : 2, area > 0 ? 2 : 1};
  if (area < 0) area = -area;
  const int64_t half = kSubpixel / 2;
  const int64_t px = s->x0 * kSubpixel + half, py = s->y0 * kSubpixel + half;
  for (int i = 0; i < 3; ++i) {
    const int j = o[(i + 1) % 3], k = o[(i + 2) % 3];  // edge i runs from vertex j to vertex k
    const int64_t dx = t.X[k] - t.X[j], dy = t.Y[k] - t.Y[j];
    const bool owner = dy > 0 || (dy == 0 && dx < 0);
    s->bias[i] = owner ? 0 : 1;
    s->e[i] = dx * (py - t.Y[j]) - dy * (px - t.X[j]) - s->bias[i];
    s->sx[i] = -dy * kSubpixel;
    s->sy[i] = dx * kSubpixel;
  }
  s->inv_area = T(1) / T(area);
  s->z0 = t.z[0];
  s->dz1 = sub_rn(t.z[o[1]], t.z[0]);
  s->dz2 = sub_rn(t.z[o[2]], t.z[0]);
  return true;
}

// z/w of a covered pixel from its exact edge functions e1, e2 (the weights of vertices 1 and 2).
template <typename T>
CSDKIT_HD T fragment_depth(const TriSetup<T>& s, int64_t e1, int64_t e2) {
  const T l1 = mul_rn(T(e1), s.inv_area);
  const T l2 = mul_rn(T(e2), s.inv_area);
  return add_rn(add_rn(s.z0, mul_rn(l1, s.dz1)), mul_rn(l2, s.dz2));
}

// Visits every covered pixel of the set-up triangle whose depth lies in [-1, 1]: sink(px, py, z).
template <typename T, typename Sink>
CSDKIT_HD void raster_triangle(const TriSetup<T>& s, Sink& sink) {
  int64_t r0 = s.e[0], r1 = s.e[1], r2 = s.e[2];
  for (int64_t py = s.y0; py <= s.y1; ++py) {
    int64_t a0 = r0, a1 = r1, a2 = r2;
    for (int64_t px = s.x0; px <= s.x1; ++px) {
      if ((a0 | a1 | a2) >= 0) {
        const T z = fragment_depth(s, a1 + s.bias[1], a2 + s.bias[2]);
        if (z >= T(-1) && z <= T(1)) sink(px, py, z);
      }
      a0 += s.sx[0];
      a1 += s.sx[1];
      a2 += s.sx[2];
    }
    r0 += s.sy[0];
    r1 += s.sy[1];
    r2 += s.sy[2];
  }
}

// One pixel of a set-up triangle (for launches that spread a large triangle over threads).
template <typename T, typename Sink>
CSDKIT_HD void raster_pixel(const TriSetup<T>& s, int64_t px, int64_t py, Sink& sink) {
  const int64_t dx = px - s.x0, dy = py - s.y0;
  const int64_t a0 = s.e[0] + dx * s.sx[0] + dy * s.sy[0];
  const int64_t a1 = s.e[1] + dx * s.sx[1] + dy * s.sy[1];
  const int64_t a2 = s.e[2] + dx * s.sx[2] + dy * s.sy[2];
  if ((a0 | a1 | a2) < 0) return;
  const T z = fragment_depth(s, a1 + s.bias[1], a2 + s.bias[2]);
  if (z >= T(-1) && z <= T(1)) sink(px, py, z);
}

// Calls fn(ScreenTri) for the screen triangles of triangle (p0, p1, p2): itself when its
// vertices are projectable, else the fan of its clipped polygon (nothing if that degenerates).
template <typename T, typename Fn>
CSDKIT_HD void for_each_screen_triangle(const T* p0, const T* p1, const T* p2, int width, int height, Fn& fn) {
  const T gx = T(guard_band(width)), gy = T(guard_band(height));
  ScreenTri<T> st;
  if (projectable(p0, gx, gy) && projectable(p1, gx, gy) && projectable(p2, gx, gy)) {
    snap_vertex(p0, width, height, &st, 0);
    snap_vertex(p1, width, height, &st, 1);
    snap_vertex(p2, width, height, &st, 2);
    fn(st);
    return;
  }
  T poly[kMaxClipVertices][4];
  const int n = clip_triangle(p0, p1, p2, gx, gy, poly);
  if (n < 3) return;
  for (int i = 0; i < n; ++i)
    if (!(poly[i][3] > T(0))) return;
  snap_vertex(poly[0], width, height, &st, 0);
  for (int i = 1; i + 1 < n; ++i) {
    snap_vertex(poly[i], width, height, &st, 1);
    snap_vertex(poly[i + 1], width, height, &st, 2);
    fn(st);
  }
}

// NDC coordinate of the centre of pixel i on an axis of `size` pixels.
template <typename T>
CSDKIT_HD T pixel_center(int64_t i, int size) {
  return sub_rn(T(2 * i + 1) / T(size), T(1));
}

// Triangle index of a rast pixel's id channel (id + 1), or -1 for background / invalid ids.
template <typename T>
CSDKIT_HD int64_t triangle_of(T id_channel, int64_t n_triangles) {
  if (!(id_channel >= T(1) && id_channel <= T(n_triangles))) return -1;
  return static_cast<int64_t>(id_channel + T(0.5)) - 1;
}

// Homogeneous 2D edge functions of the pixel centre (fx, fy) w.r.t. the clip-space triangle.
template <typename T>
struct HomogeneousBary {
  T qx[3], qy[3], a[3], det, zsum, wsum;
  bool ok;
};

template <typename T>
CSDKIT_HD HomogeneousBary<T> homogeneous_bary(const T* p0, const T* p1, const T* p2, T fx, T fy) {
  HomogeneousBary<T> h;
  const T* p[3] = {p0, p1, p2};
  for (int i = 0; i < 3; ++i) {
    h.qx[i] = sub_rn(p[i][0], mul_rn(fx, p[i][3]));
    h.qy[i] = sub_rn(p[i][1], mul_rn(fy, p[i][3]));
  }
  h.a[0] = sub_rn(mul_rn(h.qx[1], h.qy[2]), mul_rn(h.qy[1], h.qx[2]));
  h.a[1] = sub_rn(mul_rn(h.qx[2], h.qy[0]), mul_rn(h.qy[2], h.qx[0]));
  h.a[2] = sub_rn(mul_rn(h.qx[0], h.qy[1]), mul_rn(h.qy[0], h.qx[1]));
  h.det = h.a[0] + h.a[1] + h.a[2];
  h.wsum = h.a[0] * p0[3] + h.a[1] * p1[3] + h.a[2] * p2[3];
  h.ok = h.det != T(0) && h.wsum != T(0) && is_finite(h.det) && is_finite(h.wsum);
  if (!h.ok) {  // degenerate (edge-on) triangle: fall back to equal weights, no gradient
    h.a[0] = h.a[1] = h.a[2] = T(1);
    h.det = T(3);
    h.wsum = p0[3] + p1[3] + p2[3];
  }
  h.zsum = h.a[0] * p0[2] + h.a[1] * p1[2] + h.a[2] * p2[2];
  return h;
}

// (u, v, z/w) of the pixel centre (fx, fy) on the clip-space triangle (p0, p1, p2).
template <typename T>
CSDKIT_HD void resolve_pixel(const T* p0, const T* p1, const T* p2, T fx, T fy, T* out) {
  const HomogeneousBary<T> h = homogeneous_bary(p0, p1, p2, fx, fy);
  out[0] = h.a[0] / h.det;
  out[1] = h.a[1] / h.det;
  out[2] = h.zsum / h.wsum;
}

// Gradient of g . (u, v, z/w) w.r.t. the triangle's clip-space vertices: g_p[i][0..3] (written).
template <typename T>
CSDKIT_HD bool resolve_pixel_backward(const T* p0, const T* p1, const T* p2, T fx, T fy, const T* g,
                                      T (*g_p)[4]) {
  const HomogeneousBary<T> h = homogeneous_bary(p0, p1, p2, fx, fy);
  if (!h.ok) return false;
  const T* p[3] = {p0, p1, p2};
  const T u = h.a[0] / h.det, v = h.a[1] / h.det, zw = h.zsum / h.wsum;
  T ga[3];
  for (int j = 0; j < 3; ++j)
    ga[j] = (g[0] * (T(j == 0) - u) + g[1] * (T(j == 1) - v)) / h.det + g[2] * (p[j][2] - zw * p[j][3]) / h.wsum;
  const T* qx = h.qx;
  const T* qy = h.qy;
  const T gqx[3] = {-ga[1] * qy[2] + ga[2] * qy[1], ga[0] * qy[2] - ga[2] * qy[0], -ga[0] * qy[1] + ga[1] * qy[0]};
  const T gqy[3] = {ga[1] * qx[2] - ga[2] * qx[1], -ga[0] * qx[2] + ga[2] * qx[0], ga[0] * qx[1] - ga[1] * qx[0]};
  for (int i = 0; i < 3; ++i) {
    const T s = g[2] * h.a[i] / h.wsum;
    g_p[i][0] = gqx[i];
    g_p[i][1] = gqy[i];
    g_p[i][2] = s;
    g_p[i][3] = -fx * gqx[i] - fy * gqy[i] - s * zw;
  }
  return true;
}

// Screen-space derivatives (du/dX, du/dY, dv/dX, dv/dY) in pixel units at (fx, fy).
template <typename T>
CSDKIT_HD void bary_derivatives_pixel(const T* p0, const T* p1, const T* p2, T fx, T fy, int width, int height,
                                      T* out) {
  const HomogeneousBary<T> h = homogeneous_bary(p0, p1, p2, fx, fy);
  if (!h.ok) {
    out[0] = out[1] = out[2] = out[3] = T(0);
    return;
  }
  // a_i = qx_j qy_k - qy_j qx_k is linear in (fx, fy): d(qx)/dfx = d(qy)/dfy = -w. With S = sum(a),
  // d(a_i / S)/dfx = (da_i/dfx - (a_i / S) dS/dfx) / S.
  const T* p[3] = {p0, p1, p2};
  T dfx[3], dfy[3];
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    dfx[i] = -p[j][3] * h.qy[k] + h.qy[j] * p[k][3];
    dfy[i] = -h.qx[j] * p[k][3] + p[j][3] * h.qx[k];
  }
  const T dsx = dfx[0] + dfx[1] + dfx[2], dsy = dfy[0] + dfy[1] + dfy[2];
  const T inv = T(1) / h.det, sx = T(2) / T(width), sy = T(2) / T(height);
  const T u = h.a[0] * inv, v = h.a[1] * inv;
  out[0] = (dfx[0] - u * dsx) * inv * sx;
  out[1] = (dfy[0] - u * dsy) * inv * sy;
  out[2] = (dfx[1] - v * dsx) * inv * sx;
  out[3] = (dfy[1] - v * dsy) * inv * sy;
}

// ---- kernels ------------------------------------------------------------------------------------
// Contiguous row-major arrays: pos [B, V, 4], tri [T, 3] int32, rast / rast_out / d_rast /
// rast_db [B, H, W, 4], d_pos [B, V, 4] (accumulated into: +=). Triangles with a vertex index out
// of range are skipped; rast ids outside [1, T] are background. `dev` picks CPU or CUDA.

// rast = (u, v, z/w, id + 1) of the nearest triangle per pixel, 0 where none.
template <typename T>
void rasterize(const Params& p, const T* pos, const int32_t* tri, T* rast, Device dev = {});

// Recomputes (u, v, z/w) from pos for the triangle ids of rast_in (rast_out may alias rast_in).
template <typename T>
void resolve(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out, Device dev = {});

// d_pos += d(sum d_rast[..., :3] * rast[..., :3]) / d pos for the triangle ids of rast.
template <typename T>
void resolve_backward(const Params& p, const T* pos, const int32_t* tri, const T* rast, const T* d_rast, T* d_pos,
                      Device dev = {});

// rast_db = (du/dX, du/dY, dv/dX, dv/dY) per pixel (pixel units), 0 for background.
template <typename T>
void bary_derivatives(const Params& p, const T* pos, const int32_t* tri, const T* rast, T* rast_db,
                      Device dev = {});

// Device-specific implementations behind the dispatchers above.
template <typename T>
void rasterize_cpu(const Params& p, const T* pos, const int32_t* tri, T* rast);
template <typename T>
void rasterize_cuda(const Params& p, const T* pos, const int32_t* tri, T* rast, Device dev);
template <typename T>
void resolve_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out, Device dev);
template <typename T>
void resolve_backward_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast, const T* d_rast,
                           T* d_pos, Device dev);
template <typename T>
void bary_derivatives_cuda(const Params& p, const T* pos, const int32_t* tri, const T* rast, T* rast_db,
                           Device dev);

}  // namespace raster
}  // namespace csdkit
