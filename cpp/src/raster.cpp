// Triangle rasterization: argument checks, dispatch and the CPU kernels.
//
// The CPU rasterizer snaps every vertex once, then splits the images into row bands; a worker
// takes the next (image, band) task, walks all triangles in index order and rasterizes the part
// of each that falls in its band with incremental integer edge functions, keeping the nearest
// fragment in the output buffer (depth in channel 2, id in channel 3). Tasks write disjoint pixels,
// so no locks are needed and the result does not depend on the thread count. A final pass per
// pixel resolves the perspective-correct barycentrics of the winning triangle.
#include "csdkit/raster.h"

#include <atomic>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "csdkit/parallel.h"
#include "raster_scatter.h"

namespace csdkit {
namespace raster {

void check_params(const Params& p, const char* fn) {
  check_arg(p.batch >= 1, fn, "batch must be >= 1, got " + std::to_string(p.batch));
  check_arg(p.n_vertices >= 0, fn, "n_vertices must be >= 0, got " + std::to_string(p.n_vertices));
  check_arg(p.n_triangles >= 0 && p.n_triangles < (int64_t(1) << 31), fn,
            "n_triangles must be in [0, 2**31), got " + std::to_string(p.n_triangles));
  check_arg(p.height >= 1 && p.height <= kMaxResolution && p.width >= 1 && p.width <= kMaxResolution, fn,
            "resolution must be in [1, " + std::to_string(kMaxResolution) + "], got " + std::to_string(p.height) +
                "x" + std::to_string(p.width));
}

namespace {

template <typename T>
void check_id_range(const Params& p, const char* fn) {
  if (sizeof(T) == 4)
    check_arg(p.n_triangles < (int64_t(1) << 24), fn,
              "float32 output holds triangle ids up to 2**24 - 1, got " + std::to_string(p.n_triangles) +
                  " triangles (use float64)");
}

// A vertex snapped once per image: fixed-point position, z/w and whether it is projectable.
template <typename T>
struct SnappedVertex {
  int32_t X, Y;
  T z;
  int32_t ok;
};

// Vertex indices of triangle t, or false when one is out of range.
inline bool triangle_vertices(const int32_t* tri, int64_t t, int64_t n_vertices, int64_t* v) {
  for (int k = 0; k < 3; ++k) {
    v[k] = tri[3 * t + k];
    if (v[k] < 0 || v[k] >= n_vertices) return false;
  }
  return true;
}

// Keeps the nearest fragment per pixel; triangles arrive in index order, so ties keep the lower id.
template <typename T>
struct DepthTestSink {
  T* depth;  // [H, W] depth so far (+inf: empty)
  T* image;  // [H, W, 4] rast: channel 3 = id + 1
  int width;
  T id;
  void operator()(int64_t px, int64_t py, T z) {
    const int64_t i = py * width + px;
    if (z < depth[i]) {
      depth[i] = z;
      image[i * 4 + 3] = id;
    }
  }
};

template <typename T>
struct RasterScreenTri {
  int width, row_begin, row_end;
  DepthTestSink<T>* sink;
  void operator()(const ScreenTri<T>& st) {
    TriSetup<T> s;
    if (setup_triangle(st, width, row_begin, row_end, &s)) raster_triangle(s, *sink);
  }
};

template <typename T>
void raster_band(const Params& p, const T* pos, const int32_t* tri, const SnappedVertex<T>* sv, T* depth,
                 T* image, int row_begin, int row_end) {
  DepthTestSink<T> sink{depth, image, p.width, T(0)};
  RasterScreenTri<T> clipped{p.width, row_begin, row_end, &sink};
  for (int64_t t = 0; t < p.n_triangles; ++t) {
    int64_t v[3];
    if (!triangle_vertices(tri, t, p.n_vertices, v)) continue;
    const SnappedVertex<T>& a = sv[v[0]];
    const SnappedVertex<T>& b = sv[v[1]];
    const SnappedVertex<T>& c = sv[v[2]];
    sink.id = T(t + 1);
    if (a.ok & b.ok & c.ok) {
      // Cheap rejection (no pixel centre in the bounds, or outside the band) before the setup.
      int64_t x0, x1, y0, y1;
      if (!pixel_bounds(min3(a.X, b.X, c.X), max3(a.X, b.X, c.X), min3(a.Y, b.Y, c.Y), max3(a.Y, b.Y, c.Y),
                        p.width, row_begin, row_end, &x0, &x1, &y0, &y1))
        continue;
      const ScreenTri<T> st{{a.X, b.X, c.X}, {a.Y, b.Y, c.Y}, {a.z, b.z, c.z}};
      TriSetup<T> s;
      if (setup_triangle(st, p.width, row_begin, row_end, &s)) raster_triangle(s, sink);
    } else {
      for_each_screen_triangle(pos + v[0] * 4, pos + v[1] * 4, pos + v[2] * 4, p.width, p.height, clipped);
    }
  }
}

// Resolves one pixel in place or from rast_in: (u, v, z/w, id + 1), zero for background.
template <typename T>
void resolve_one(const Params& p, const T* pos_b, const int32_t* tri, const T* in, T* out, int64_t px,
                 int64_t py) {
  const int64_t t = triangle_of(in[3], p.n_triangles);
  int64_t v[3];
  if (t < 0 || !triangle_vertices(tri, t, p.n_vertices, v)) {
    out[0] = out[1] = out[2] = out[3] = T(0);
    return;
  }
  const T id = T(t + 1);
  resolve_pixel(pos_b + v[0] * 4, pos_b + v[1] * 4, pos_b + v[2] * 4, pixel_center<T>(px, p.width),
                pixel_center<T>(py, p.height), out);
  out[3] = id;
}

// Resolves every pixel, parallel over image rows (no per-pixel index divisions).
template <typename T>
void resolve_rows(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out) {
  const int64_t H = p.height, W = p.width, V = p.n_vertices;
  parallel_for(p.batch * H, std::max<int64_t>(1, 4096 / W), [&](int64_t rb, int64_t re) {
    for (int64_t row = rb; row < re; ++row) {
      const int64_t img = row / H, py = row % H;
      const T* pos_b = pos + img * V * 4;
      const T* in = rast_in + row * W * 4;
      T* out = rast_out + row * W * 4;
      for (int64_t px = 0; px < W; ++px) resolve_one(p, pos_b, tri, in + px * 4, out + px * 4, px, py);
    }
  });
}

}  // namespace

template <typename T>
void rasterize_cpu(const Params& p, const T* pos, const int32_t* tri, T* rast) {
  const int64_t H = p.height, W = p.width, B = p.batch, V = p.n_vertices;
  const int64_t n_pix = B * H * W;
  // A dense depth buffer (4x denser in cache than the rast channels) and the ids in rast[..., 3].
  std::unique_ptr<T[]> depth(new T[size_t(n_pix)]);
  parallel_for(n_pix, 1 << 15, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      depth[i] = std::numeric_limits<T>::infinity();
      rast[i * 4 + 3] = T(0);
    }
  });
  // Snap every vertex once.
  std::vector<SnappedVertex<T>> sv(size_t(B * V));
  const T gx = T(guard_band(p.width)), gy = T(guard_band(p.height));
  parallel_for(B * V, 1 << 12, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* q = pos + i * 4;
      SnappedVertex<T>& s = sv[size_t(i)];
      s.ok = projectable(q, gx, gy) ? 1 : 0;
      if (s.ok) {
        s.X = static_cast<int32_t>(snap_coordinate(double(q[0]), double(q[3]), p.width));
        s.Y = static_cast<int32_t>(snap_coordinate(double(q[1]), double(q[3]), p.height));
        s.z = q[2] / q[3];
      } else {
        s.X = s.Y = 0;
        s.z = T(0);
      }
    }
  });
  // (image, row band) tasks, taken dynamically by the workers. Bands only when there are fewer
  // images than ~2 tasks per thread: every band walks the whole triangle list.
  const int64_t threads = num_threads();
  const int64_t max_bands = std::max<int64_t>(1, H / 16);
  const int64_t n_bands = std::min<int64_t>(max_bands, std::max<int64_t>(1, (2 * threads + B - 1) / B));
  const int64_t n_tasks = B * n_bands;
  std::atomic<int64_t> next{0};
  parallel_for(std::min(threads, n_tasks), 1, [&](int64_t wb, int64_t we) {
    for (int64_t worker = wb; worker < we; ++worker) {
      for (int64_t task = next.fetch_add(1); task < n_tasks; task = next.fetch_add(1)) {
        const int64_t b = task / n_bands, band = task % n_bands;
        const int row_begin = int(band * H / n_bands), row_end = int((band + 1) * H / n_bands);
        raster_band(p, pos + b * V * 4, tri, sv.data() + b * V, depth.get() + b * H * W, rast + b * H * W * 4,
                    row_begin, row_end);
      }
    }
  });
  // Resolve barycentrics in place.
  resolve_rows(p, pos, tri, rast, rast);
}

namespace {

template <typename T>
void resolve_cpu(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out) {
  resolve_rows(p, pos, tri, rast_in, rast_out);
}

template <typename T>
void resolve_backward_cpu(const Params& p, const T* pos, const int32_t* tri, const T* rast, const T* d_rast,
                          T* d_pos) {
  const int64_t H = p.height, W = p.width, V = p.n_vertices, HW = H * W;
  const int64_t size = p.batch * V * 4;
  chunked_scatter<T>(
      p.batch * HW, 4096, size, d_pos,
      [&](int64_t b, int64_t e, T* acc) {
        for (int64_t i = b; i < e; ++i) {
          const T* g = d_rast + i * 4;
          if (g[0] == T(0) && g[1] == T(0) && g[2] == T(0)) continue;
          const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
          int64_t v[3];
          if (t < 0 || !triangle_vertices(tri, t, V, v)) continue;
          const int64_t img = i / HW, py = (i / W) % H, px = i % W;
          const T* pb = pos + img * V * 4;
          T gp[3][4];
          if (!resolve_pixel_backward(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, pixel_center<T>(px, p.width),
                                      pixel_center<T>(py, p.height), g, gp))
            continue;
          T* ab = acc + img * V * 4;
          for (int k = 0; k < 3; ++k)
            for (int c = 0; c < 4; ++c) ab[v[k] * 4 + c] += gp[k][c];
        }
      },
      [&](const T* total) { add_into(d_pos, total, size); });
}

template <typename T>
void bary_derivatives_cpu(const Params& p, const T* pos, const int32_t* tri, const T* rast, T* rast_db) {
  const int64_t H = p.height, W = p.width, V = p.n_vertices;
  parallel_for(p.batch * H * W, 1 << 12, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T* out = rast_db + i * 4;
      const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
      int64_t v[3];
      if (t < 0 || !triangle_vertices(tri, t, V, v)) {
        out[0] = out[1] = out[2] = out[3] = T(0);
        continue;
      }
      const int64_t img = i / (H * W), py = (i / W) % H, px = i % W;
      const T* pb = pos + img * V * 4;
      bary_derivatives_pixel(pb + v[0] * 4, pb + v[1] * 4, pb + v[2] * 4, pixel_center<T>(px, p.width),
                             pixel_center<T>(py, p.height), p.width, p.height, out);
    }
  });
}

void check_pointers(const Params& p, const char* fn, std::initializer_list<const void*> ptrs) {
  if (p.batch * p.height * p.width == 0) return;
  for (const void* q : ptrs) check_arg(q != nullptr, fn, "a required pointer is null");
}

}  // namespace

template <typename T>
void rasterize(const Params& p, const T* pos, const int32_t* tri, T* rast, Device dev) {
  const char* fn = "raster::rasterize";
  check_params(p, fn);
  check_id_range<T>(p, fn);
  check_pointers(p, fn, {rast});
  check_arg(p.n_triangles == 0 || (pos && tri), fn, "pos and tri must not be null");
  if (dev.is_cuda())
    rasterize_cuda<T>(p, pos, tri, rast, dev);
  else
    rasterize_cpu<T>(p, pos, tri, rast);
}

template <typename T>
void resolve(const Params& p, const T* pos, const int32_t* tri, const T* rast_in, T* rast_out, Device dev) {
  const char* fn = "raster::resolve";
  check_params(p, fn);
  check_id_range<T>(p, fn);
  check_pointers(p, fn, {rast_in, rast_out});
  if (dev.is_cuda())
    resolve_cuda<T>(p, pos, tri, rast_in, rast_out, dev);
  else
    resolve_cpu<T>(p, pos, tri, rast_in, rast_out);
}

template <typename T>
void resolve_backward(const Params& p, const T* pos, const int32_t* tri, const T* rast, const T* d_rast, T* d_pos,
                      Device dev) {
  const char* fn = "raster::resolve_backward";
  check_params(p, fn);
  check_pointers(p, fn, {rast, d_rast, d_pos});
  if (p.n_vertices == 0 || p.n_triangles == 0) return;
  if (dev.is_cuda())
    resolve_backward_cuda<T>(p, pos, tri, rast, d_rast, d_pos, dev);
  else
    resolve_backward_cpu<T>(p, pos, tri, rast, d_rast, d_pos);
}

template <typename T>
void bary_derivatives(const Params& p, const T* pos, const int32_t* tri, const T* rast, T* rast_db, Device dev) {
  const char* fn = "raster::bary_derivatives";
  check_params(p, fn);
  check_pointers(p, fn, {rast, rast_db});
  if (dev.is_cuda())
    bary_derivatives_cuda<T>(p, pos, tri, rast, rast_db, dev);
  else
    bary_derivatives_cpu<T>(p, pos, tri, rast, rast_db);
}

#define CSDKIT_INSTANTIATE(T)                                                                                \
  template void rasterize<T>(const Params&, const T*, const int32_t*, T*, Device);                           \
  template void resolve<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);                   \
  template void resolve_backward<T>(const Params&, const T*, const int32_t*, const T*, const T*, T*, Device); \
  template void bary_derivatives<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);          \
  template void rasterize_cpu<T>(const Params&, const T*, const int32_t*, T*);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
namespace {
[[noreturn]] void no_cuda(const char* fn) {
  throw std::runtime_error(std::string(fn) + "(): csdkit was not compiled with CUDA support");
}
}  // namespace
template <typename T>
void rasterize_cuda(const Params&, const T*, const int32_t*, T*, Device) {
  no_cuda("raster::rasterize");
}
template <typename T>
void resolve_cuda(const Params&, const T*, const int32_t*, const T*, T*, Device) {
  no_cuda("raster::resolve");
}
template <typename T>
void resolve_backward_cuda(const Params&, const T*, const int32_t*, const T*, const T*, T*, Device) {
  no_cuda("raster::resolve_backward");
}
template <typename T>
void bary_derivatives_cuda(const Params&, const T*, const int32_t*, const T*, T*, Device) {
  no_cuda("raster::bary_derivatives");
}
#define CSDKIT_INSTANTIATE(T)                                                                                     \
  template void rasterize_cuda<T>(const Params&, const T*, const int32_t*, T*, Device);                           \
  template void resolve_cuda<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);                   \
  template void resolve_backward_cuda<T>(const Params&, const T*, const int32_t*, const T*, const T*, T*, Device); \
  template void bary_derivatives_cuda<T>(const Params&, const T*, const int32_t*, const T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE
#endif

}  // namespace raster
}  // namespace csdkit
