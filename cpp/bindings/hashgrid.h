// Binding adapters for the hash-grid encoding (csdkit/hashgrid.h).
#pragma once

#include <pybind11/stl.h>

#include "common.h"
#include "csdkit/hashgrid.h"

namespace csdkit_bind {

inline py::dict hashgrid_layout(const csdkit::hashgrid::Options& opt) {
  const auto L = csdkit::hashgrid::make_layout(opt);
  py::list offsets, resolution, scale;
  for (int l = 0; l <= L.n_levels; ++l) offsets.append(L.offsets[l]);
  for (int l = 0; l < L.n_levels; ++l) {
    resolution.append(L.resolution[l]);
    scale.append(L.scale[l]);
  }
  py::dict d;
  d["offsets"] = offsets;
  d["resolution"] = resolution;
  d["scale"] = scale;
  return d;
}

inline void hashgrid_forward(const csdkit::hashgrid::Options& opt, int64_t n, uintptr_t x, uintptr_t params,
                             uintptr_t out, const std::string& dtype, int device, uintptr_t stream) {
  const auto L = csdkit::hashgrid::make_layout(opt);
  py::gil_scoped_release nogil;
  dispatch_float("hashgrid_forward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::hashgrid::encode_forward<T>(L, n, ptr<const T>(x), ptr<const T>(params), ptr<T>(out),
                                        device_of(device, stream));
  });
}

inline void hashgrid_backward(const csdkit::hashgrid::Options& opt, int64_t n, uintptr_t x, uintptr_t params,
                              uintptr_t d_out, uintptr_t d_params, uintptr_t d_x, const std::string& dtype,
                              int device, uintptr_t stream, bool accumulate) {
  const auto L = csdkit::hashgrid::make_layout(opt);
  py::gil_scoped_release nogil;
  dispatch_float("hashgrid_backward", dtype, [&](auto tag) {
    using T = decltype(tag);
    csdkit::hashgrid::encode_backward<T>(L, n, ptr<const T>(x), ptr<const T>(params), ptr<const T>(d_out),
                                         ptr<T>(d_params), ptr<T>(d_x), device_of(device, stream),
                                         accumulate);
  });
}

inline void bind_hashgrid_types(py::module_& m) {
  using csdkit::hashgrid::Options;
  py::class_<Options>(m, "HashGridOptions", "Options of the hash-grid encoding (csdkit/hashgrid.h)")
      .def(py::init<>())
      .def_readwrite("n_dims", &Options::n_dims)
      .def_readwrite("n_levels", &Options::n_levels)
      .def_readwrite("n_features", &Options::n_features)
      .def_readwrite("log2_hashmap_size", &Options::log2_hashmap_size)
      .def_readwrite("base_resolution", &Options::base_resolution)
      .def_readwrite("per_level_scale", &Options::per_level_scale)
      .def_readwrite("interpolation", &Options::interpolation);
}

}  // namespace csdkit_bind
