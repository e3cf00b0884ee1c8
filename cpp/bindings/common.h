// Helpers for the binding adapters. Tensors cross the boundary as raw data pointers (uintptr_t)
// plus a device ordinal and a CUDA stream handle; csdkit.ops._native (Python) has already checked
// dtype, shape, device and contiguity, and the C++ API re-checks its own invariants.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "csdkit/common.h"

namespace csdkit_bind {

namespace py = pybind11;

inline csdkit::Device device_of(int index, uintptr_t stream) {
  return csdkit::Device{index, reinterpret_cast<void*>(stream)};
}

template <typename T>
inline T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

// Calls fn(T{}) with T = float or double according to `dtype` ("float32" or "float64").
template <typename F>
inline void dispatch_float(const std::string& fn_name, const std::string& dtype, F&& fn) {
  if (dtype == "float32")
    fn(float{});
  else if (dtype == "float64")
    fn(double{});
  else
    throw std::invalid_argument(fn_name + "(): dtype must be float32 or float64, got " + dtype);
}

}  // namespace csdkit_bind
