// Binding adapters for the rasterizer family (csdkit/raster*.h): rasterize, resolve, interpolate,
// texture. Pointers arrive as integers; csdkit.ops has validated dtypes, shapes and devices.
#pragma once

#include <pybind11/stl.h>

#include <vector>

#include "common.h"
#include "csdkit/raster.h"
#include "csdkit/raster_antialias.h"
#include "csdkit/raster_interpolate.h"
#include "csdkit/raster_texture.h"

namespace csdkit_bind {

inline csdkit::raster::Params raster_params(int64_t b, int64_t v, int64_t t, int h, int w) {
  csdkit::raster::Params p;
  p.batch = b;
  p.n_vertices = v;
  p.n_triangles = t;
  p.height = h;
  p.width = w;
  return p;
}

inline void raster_forward(int64_t b, int64_t v, int64_t t, int h, int w, uintptr_t pos, uintptr_t tri,
                           uintptr_t rast, const std::string& dtype, int device, uintptr_t stream) {
  const auto p = raster_params(b, v, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::rasterize<T>(p, ptr<const T>(pos), ptr<const int32_t>(tri), ptr<T>(rast),
                                 device_of(device, stream));
  });
}

inline void raster_resolve(int64_t b, int64_t v, int64_t t, int h, int w, uintptr_t pos, uintptr_t tri,
                           uintptr_t rast, uintptr_t out, const std::string& dtype, int device, uintptr_t stream) {
  const auto p = raster_params(b, v, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_resolve", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::resolve<T>(p, ptr<const T>(pos), ptr<const int32_t>(tri), ptr<const T>(rast), ptr<T>(out),
                               device_of(device, stream));
  });
}

inline void raster_resolve_backward(int64_t b, int64_t v, int64_t t, int h, int w, uintptr_t pos, uintptr_t tri,
                                    uintptr_t rast, uintptr_t d_rast, uintptr_t d_pos, const std::string& dtype,
                                    int device, uintptr_t stream) {
  const auto p = raster_params(b, v, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_resolve_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::resolve_backward<T>(p, ptr<const T>(pos), ptr<const int32_t>(tri), ptr<const T>(rast),
                                        ptr<const T>(d_rast), ptr<T>(d_pos), device_of(device, stream));
  });
}

inline void raster_bary_derivatives(int64_t b, int64_t v, int64_t t, int h, int w, uintptr_t pos, uintptr_t tri,
                                    uintptr_t rast, uintptr_t rast_db, const std::string& dtype, int device,
                                    uintptr_t stream) {
  const auto p = raster_params(b, v, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_bary_derivatives", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::bary_derivatives<T>(p, ptr<const T>(pos), ptr<const int32_t>(tri), ptr<const T>(rast),
                                        ptr<T>(rast_db), device_of(device, stream));
  });
}

inline csdkit::raster::InterpolateParams interpolate_params(int64_t b, int64_t ab, int64_t v, int64_t c, int64_t t,
                                                            int h, int w) {
  csdkit::raster::InterpolateParams p;
  p.batch = b;
  p.attr_batch = ab;
  p.n_vertices = v;
  p.n_channels = c;
  p.n_triangles = t;
  p.height = h;
  p.width = w;
  return p;
}

inline void raster_interpolate_forward(int64_t b, int64_t ab, int64_t v, int64_t c, int64_t t, int h, int w,
                                       uintptr_t attr, uintptr_t rast, uintptr_t tri, uintptr_t out,
                                       const std::string& dtype, int device, uintptr_t stream) {
  const auto p = interpolate_params(b, ab, v, c, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_interpolate_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::interpolate_forward<T>(p, ptr<const T>(attr), ptr<const T>(rast), ptr<const int32_t>(tri),
                                           ptr<T>(out), device_of(device, stream));
  });
}

inline void raster_interpolate_backward(int64_t b, int64_t ab, int64_t v, int64_t c, int64_t t, int h, int w,
                                        uintptr_t attr, uintptr_t rast, uintptr_t tri, uintptr_t d_out,
                                        uintptr_t d_attr, uintptr_t d_rast, const std::string& dtype, int device,
                                        uintptr_t stream) {
  const auto p = interpolate_params(b, ab, v, c, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_interpolate_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::interpolate_backward<T>(p, ptr<const T>(attr), ptr<const T>(rast), ptr<const int32_t>(tri),
                                            ptr<const T>(d_out), ptr<T>(d_attr), ptr<T>(d_rast),
                                            device_of(device, stream));
  });
}

inline csdkit::raster::AntialiasParams antialias_params(int64_t b, int64_t pb, int64_t v, int64_t c, int64_t t,
                                                        int h, int w) {
  csdkit::raster::AntialiasParams p;
  p.batch = b;
  p.pos_batch = pb;
  p.n_vertices = v;
  p.n_channels = c;
  p.n_triangles = t;
  p.height = h;
  p.width = w;
  return p;
}

inline void raster_antialias_forward(int64_t b, int64_t pb, int64_t v, int64_t c, int64_t t, int h, int w,
                                     uintptr_t color, uintptr_t rast, uintptr_t pos, uintptr_t tri,
                                     uintptr_t topology, uintptr_t out, uintptr_t weight, const std::string& dtype,
                                     int device, uintptr_t stream) {
  const auto p = antialias_params(b, pb, v, c, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_antialias_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::antialias_forward<T>(p, ptr<const T>(color), ptr<const T>(rast), ptr<const T>(pos),
                                         ptr<const int32_t>(tri), ptr<const int32_t>(topology), ptr<T>(out),
                                         ptr<T>(weight), device_of(device, stream));
  });
}

inline void raster_antialias_backward(int64_t b, int64_t pb, int64_t v, int64_t c, int64_t t, int h, int w,
                                      uintptr_t color, uintptr_t rast, uintptr_t pos, uintptr_t tri,
                                      uintptr_t topology, uintptr_t out, uintptr_t weight, uintptr_t d_out,
                                      uintptr_t d_color, uintptr_t d_pos, const std::string& dtype, int device,
                                      uintptr_t stream) {
  const auto p = antialias_params(b, pb, v, c, t, h, w);
  py::gil_scoped_release nogil;
  dispatch_float("raster_antialias_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::raster::antialias_backward<T>(p, ptr<const T>(color), ptr<const T>(rast), ptr<const T>(pos),
                                          ptr<const int32_t>(tri), ptr<const int32_t>(topology), ptr<const T>(out),
                                          ptr<const T>(weight), ptr<const T>(d_out), ptr<T>(d_color), ptr<T>(d_pos),
                                          device_of(device, stream));
  });
}

inline csdkit::raster::TextureParams texture_params(const char* fn, int64_t b, int64_t tb, int64_t c, int h, int w,
                                                    const std::vector<int>& level_h, const std::vector<int>& level_w,
                                                    int filter, int boundary, bool fd_derivatives) {
  csdkit::check_arg(!level_h.empty() && level_h.size() == level_w.size() &&
                        level_h.size() <= size_t(csdkit::raster::kMaxMipLevels),
                    fn, "level sizes must be two equal-length lists of 1.." +
                            std::to_string(csdkit::raster::kMaxMipLevels) + " entries");
  csdkit::raster::TextureParams p;
  p.batch = b;
  p.tex_batch = tb;
  p.n_channels = c;
  p.height = h;
  p.width = w;
  p.n_levels = int(level_h.size());
  for (size_t l = 0; l < level_h.size(); ++l) {
    p.level_height[l] = level_h[l];
    p.level_width[l] = level_w[l];
  }
  p.filter = filter;
  p.boundary = boundary;
  p.fd_derivatives = fd_derivatives;
  return p;
}

inline void raster_texture_forward(int64_t b, int64_t tb, int64_t c, int h, int w, const std::vector<int>& level_h,
                                   const std::vector<int>& level_w, const std::vector<uintptr_t>& levels,
                                   uintptr_t uv, uintptr_t uv_da, uintptr_t bias, uintptr_t out, int filter,
                                   int boundary, bool fd_derivatives, const std::string& dtype, int device,
                                   uintptr_t stream) {
  const char* fn = "raster_texture_forward";
  const auto p = texture_params(fn, b, tb, c, h, w, level_h, level_w, filter, boundary, fd_derivatives);
  csdkit::check_arg(levels.size() == level_h.size(), fn, "one pointer per mip level is needed");
  py::gil_scoped_release nogil;
  dispatch_float(fn, dtype, [&](auto tag) {
    using T = decltype(tag);
    std::vector<const T*> lv;
    for (auto q : levels) lv.push_back(ptr<const T>(q));
    csdkit::raster::texture_forward<T>(p, lv.data(), ptr<const T>(uv), ptr<const T>(uv_da), ptr<const T>(bias),
                                       ptr<T>(out), device_of(device, stream));
  });
}

inline void raster_texture_backward(int64_t b, int64_t tb, int64_t c, int h, int w, const std::vector<int>& level_h,
                                    const std::vector<int>& level_w, const std::vector<uintptr_t>& levels,
                                    uintptr_t uv, uintptr_t uv_da, uintptr_t bias, uintptr_t d_out,
                                    const std::vector<uintptr_t>& d_levels, uintptr_t d_uv, int filter,
                                    int boundary, bool fd_derivatives, const std::string& dtype, int device,
                                    uintptr_t stream) {
  const char* fn = "raster_texture_backward";
  const auto p = texture_params(fn, b, tb, c, h, w, level_h, level_w, filter, boundary, fd_derivatives);
  csdkit::check_arg(levels.size() == level_h.size(), fn, "one pointer per mip level is needed");
  csdkit::check_arg(d_levels.empty() || d_levels.size() == level_h.size(), fn,
                    "d_levels must be empty or hold one pointer per mip level");
  py::gil_scoped_release nogil;
  dispatch_float(fn, dtype, [&](auto tag) {
    using T = decltype(tag);
    std::vector<const T*> lv;
    std::vector<T*> dlv;
    for (auto q : levels) lv.push_back(ptr<const T>(q));
    for (auto q : d_levels) dlv.push_back(ptr<T>(q));
    csdkit::raster::texture_backward<T>(p, lv.data(), ptr<const T>(uv), ptr<const T>(uv_da), ptr<const T>(bias),
                                        ptr<const T>(d_out), dlv.empty() ? nullptr : dlv.data(), ptr<T>(d_uv),
                                        device_of(device, stream));
  });
}

}  // namespace csdkit_bind
