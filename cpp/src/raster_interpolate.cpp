// Attribute interpolation: argument checks, dispatch and the CPU kernels.
#include "csdkit/raster_interpolate.h"

#include <string>

#include "csdkit/parallel.h"
#include "raster_scatter.h"

namespace csdkit {
namespace raster {

namespace {

void check_interpolate(const InterpolateParams& p, const char* fn) {
  check_arg(p.batch >= 1, fn, "batch must be >= 1, got " + std::to_string(p.batch));
  check_arg(p.attr_batch == 1 || p.attr_batch == p.batch, fn,
            "attr_batch must be 1 or batch (" + std::to_string(p.batch) + "), got " + std::to_string(p.attr_batch));
  check_arg(p.n_vertices >= 0 && p.n_channels >= 0 && p.n_triangles >= 0, fn, "sizes must be >= 0");
  check_arg(p.height >= 1 && p.width >= 1, fn,
            "resolution must be >= 1, got " + std::to_string(p.height) + "x" + std::to_string(p.width));
}

// Pointers to the three vertices' attributes of pixel i's triangle, or false for background.
template <typename T>
bool pixel_triangle(const InterpolateParams& p, const T* rast, const int32_t* tri, int64_t i, int64_t* v) {
  const int64_t t = triangle_of(rast[i * 4 + 3], p.n_triangles);
  if (t < 0) return false;
  for (int k = 0; k < 3; ++k) {
    v[k] = tri[3 * t + k];
    if (v[k] < 0 || v[k] >= p.n_vertices) return false;
  }
  return true;
}

template <typename T>
struct PlainAdd {
  void operator()(T* ptr, T value) const { *ptr += value; }
};

template <typename T>
void forward_cpu(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, T* out) {
  const int64_t HW = int64_t(p.height) * p.width, C = p.n_channels, V = p.n_vertices;
  parallel_for(p.batch * HW, 2048, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T* o = out + i * C;
      int64_t v[3];
      if (!pixel_triangle(p, rast, tri, i, v)) {
        for (int64_t c = 0; c < C; ++c) o[c] = T(0);
        continue;
      }
      const T* a = attr + (p.attr_batch == 1 ? 0 : i / HW) * V * C;
      interpolate_pixel(a + v[0] * C, a + v[1] * C, a + v[2] * C, rast[i * 4], rast[i * 4 + 1], C, o);
    }
  });
}

template <typename T>
void backward_cpu(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, const T* d_out,
                  T* d_attr, T* d_rast) {
  const int64_t HW = int64_t(p.height) * p.width, C = p.n_channels, V = p.n_vertices;
  const int64_t n_pix = p.batch * HW;
  // One pass over the pixels; d_rast is per pixel (no race), d_attr a scatter into `acc`.
  auto pixels = [&](int64_t b, int64_t e, T* acc) {
    PlainAdd<T> add;
    for (int64_t i = b; i < e; ++i) {
      int64_t v[3];
      if (!pixel_triangle(p, rast, tri, i, v)) {
        if (d_rast) d_rast[i * 4] = d_rast[i * 4 + 1] = d_rast[i * 4 + 2] = d_rast[i * 4 + 3] = T(0);
        continue;
      }
      const int64_t ab = p.attr_batch == 1 ? 0 : i / HW;
      const T* a = attr + ab * V * C;
      T* g = acc ? acc + ab * V * C : nullptr;
      T du_dv[2];
      interpolate_pixel_backward(a + v[0] * C, a + v[1] * C, a + v[2] * C, rast[i * 4], rast[i * 4 + 1], C,
                                 d_out + i * C, g ? g + v[0] * C : nullptr, g ? g + v[1] * C : nullptr,
                                 g ? g + v[2] * C : nullptr, add, du_dv);
      if (d_rast) {
        d_rast[i * 4] = du_dv[0];
        d_rast[i * 4 + 1] = du_dv[1];
        d_rast[i * 4 + 2] = d_rast[i * 4 + 3] = T(0);
      }
    }
  };
  if (d_attr) {
    const int64_t size = p.attr_batch * V * C;
    chunked_scatter<T>(n_pix, 4096, size, d_attr, pixels, [&](const T* total) { add_into(d_attr, total, size); });
  } else if (d_rast) {
    parallel_for(n_pix, 4096, [&](int64_t b, int64_t e) { pixels(b, e, nullptr); });
  }
}

}  // namespace

template <typename T>
void interpolate_forward(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri, T* out,
                         Device dev) {
  const char* fn = "raster::interpolate_forward";
  check_interpolate(p, fn);
  check_arg(rast && out && (p.n_triangles == 0 || (attr && tri)), fn, "a required pointer is null");
  if (dev.is_cuda())
    interpolate_forward_cuda<T>(p, attr, rast, tri, out, dev);
  else
    forward_cpu<T>(p, attr, rast, tri, out);
}

template <typename T>
void interpolate_backward(const InterpolateParams& p, const T* attr, const T* rast, const int32_t* tri,
                          const T* d_out, T* d_attr, T* d_rast, Device dev) {
  const char* fn = "raster::interpolate_backward";
  check_interpolate(p, fn);
  check_arg(rast && d_out && (p.n_triangles == 0 || (attr && tri)), fn, "a required pointer is null");
  if (!d_attr && !d_rast) return;
  if (dev.is_cuda())
    interpolate_backward_cuda<T>(p, attr, rast, tri, d_out, d_attr, d_rast, dev);
  else
    backward_cpu<T>(p, attr, rast, tri, d_out, d_attr, d_rast);
}

#define CSDKIT_INSTANTIATE(T)                                                                                   \
  template void interpolate_forward<T>(const InterpolateParams&, const T*, const T*, const int32_t*, T*, Device); \
  template void interpolate_backward<T>(const InterpolateParams&, const T*, const T*, const int32_t*, const T*, \
                                        T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void interpolate_forward_cuda(const InterpolateParams&, const T*, const T*, const int32_t*, T*, Device) {
  throw std::runtime_error("raster::interpolate_forward(): csdkit was not compiled with CUDA support");
}
template <typename T>
void interpolate_backward_cuda(const InterpolateParams&, const T*, const T*, const int32_t*, const T*, T*, T*,
                               Device) {
  throw std::runtime_error("raster::interpolate_backward(): csdkit was not compiled with CUDA support");
}
#define CSDKIT_INSTANTIATE(T)                                                                                 \
  template void interpolate_forward_cuda<T>(const InterpolateParams&, const T*, const T*, const int32_t*, T*, \
                                            Device);                                                          \
  template void interpolate_backward_cuda<T>(const InterpolateParams&, const T*, const T*, const int32_t*,    \
                                             const T*, T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE
#endif

}  // namespace raster
}  // namespace csdkit
