// Antialiasing: argument checks, dispatch and the CPU kernels (math in csdkit/raster_antialias.h).
#include "csdkit/raster_antialias.h"

#include <string>

#include "csdkit/parallel.h"
#include "raster_scatter.h"

namespace csdkit {
namespace raster {

namespace {

void check_antialias(const AntialiasParams& p, const char* fn) {
  check_arg(p.batch >= 1, fn, "batch must be >= 1, got " + std::to_string(p.batch));
  check_arg(p.pos_batch == 1 || p.pos_batch == p.batch, fn,
            "pos_batch must be 1 or batch (" + std::to_string(p.batch) + "), got " + std::to_string(p.pos_batch));
  check_arg(p.n_vertices >= 0 && p.n_channels >= 1 && p.n_triangles >= 0, fn,
            "sizes must be >= 0 and n_channels >= 1");
  check_arg(p.height >= 1 && p.width >= 1, fn,
            "resolution must be >= 1, got " + std::to_string(p.height) + "x" + std::to_string(p.width));
}

template <typename T>
void forward_cpu(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                 const int32_t* topology, T* out, T* weight) {
  const int64_t HW = int64_t(p.height) * p.width, C = p.n_channels;
  parallel_for(p.batch * HW, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* pos_i = pos + (p.pos_batch == 1 ? 0 : i / HW) * p.n_vertices * 4;
      antialias_pixel(p, color, rast, pos_i, tri, topology, i, out + i * C, weight + i);
    }
  });
}

template <typename T>
void backward_cpu(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                  const int32_t* topology, const T* out, const T* weight, const T* d_out, T* d_color, T* d_pos) {
  const int64_t HW = int64_t(p.height) * p.width, V = p.n_vertices;
  const int64_t n_pix = p.batch * HW;
  // d_color is per pixel (no race); d_pos is a scatter into `acc`.
  auto pixels = [&](int64_t b, int64_t e, T* acc) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t img = p.pos_batch == 1 ? 0 : i / HW;
      T* acc_i = acc ? acc + img * V * 4 : nullptr;
      auto add_pos = [acc_i](int32_t v, const T* ds, T dl_ds) {
        if (!acc_i) return;
        T* g = acc_i + int64_t(v) * 4;
        g[0] += ds[0] * dl_ds;
        g[1] += ds[1] * dl_ds;
        g[3] += ds[2] * dl_ds;
      };
      antialias_pixel_backward(p, color, rast, pos + img * V * 4, tri, topology, out, weight, d_out, i, d_color,
                               add_pos);
    }
  };
  if (d_pos) {
    const int64_t size = p.pos_batch * V * 4;
    chunked_scatter<T>(n_pix, 4096, size, d_pos, pixels, [&](const T* total) { add_into(d_pos, total, size); });
  } else if (d_color) {
    parallel_for(n_pix, 4096, [&](int64_t b, int64_t e) { pixels(b, e, nullptr); });
  }
}

}  // namespace

template <typename T>
void antialias_forward(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                       const int32_t* topology, T* out, T* weight, Device dev) {
  const char* fn = "raster::antialias_forward";
  check_antialias(p, fn);
  check_arg(color && rast && out && weight && (p.n_triangles == 0 || (pos && tri && topology)), fn,
            "a required pointer is null");
  if (dev.is_cuda())
    antialias_forward_cuda<T>(p, color, rast, pos, tri, topology, out, weight, dev);
  else
    forward_cpu<T>(p, color, rast, pos, tri, topology, out, weight);
}

template <typename T>
void antialias_backward(const AntialiasParams& p, const T* color, const T* rast, const T* pos, const int32_t* tri,
                        const int32_t* topology, const T* out, const T* weight, const T* d_out, T* d_color,
                        T* d_pos, Device dev) {
  const char* fn = "raster::antialias_backward";
  check_antialias(p, fn);
  check_arg(color && rast && out && weight && d_out && (p.n_triangles == 0 || (pos && tri && topology)), fn,
            "a required pointer is null");
  if (!d_color && !d_pos) return;
  if (dev.is_cuda())
    antialias_backward_cuda<T>(p, color, rast, pos, tri, topology, out, weight, d_out, d_color, d_pos, dev);
  else
    backward_cpu<T>(p, color, rast, pos, tri, topology, out, weight, d_out, d_color, d_pos);
}

#define CSDKIT_INSTANTIATE(T)                                                                                 \
  template void antialias_forward<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*,    \
                                     const int32_t*, T*, T*, Device);                                         \
  template void antialias_backward<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*,   \
                                      const int32_t*, const T*, const T*, const T*, T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
template <typename T>
void antialias_forward_cuda(const AntialiasParams&, const T*, const T*, const T*, const int32_t*, const int32_t*, T*,
                            T*, Device) {
  throw std::runtime_error("raster::antialias_forward(): csdkit was not compiled with CUDA support");
}
template <typename T>
void antialias_backward_cuda(const AntialiasParams&, const T*, const T*, const T*, const int32_t*, const int32_t*,
                             const T*, const T*, const T*, T*, T*, Device) {
  throw std::runtime_error("raster::antialias_backward(): csdkit was not compiled with CUDA support");
}
#define CSDKIT_INSTANTIATE(T)                                                                                    \
  template void antialias_forward_cuda<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*,  \
                                          const int32_t*, T*, T*, Device);                                       \
  template void antialias_backward_cuda<T>(const AntialiasParams&, const T*, const T*, const T*, const int32_t*, \
                                           const int32_t*, const T*, const T*, const T*, T*, T*, Device);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE
#endif

}  // namespace raster
}  // namespace csdkit
