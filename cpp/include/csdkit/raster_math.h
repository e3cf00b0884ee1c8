// csdkit/raster_math.h -- floating-point helpers of the rasterizer kernels that must round exactly
// like the pure-PyTorch reference (python/csdkit/ops/reference/rasterize.py).
//
// nvcc contracts `a * b + c` into one fused multiply-add by default; the snapping, clipping and
// depth arithmetic of the rasterizer must not be contracted, or the GPU would decide coverage
// differently from the CPU and the reference for pixel centres that lie on an edge. The *_rn
// helpers force separately rounded operations on the device; on the host they are plain operators
// (x86-64 compilers do not contract without -mfma/-march flags).
#pragma once

#include <cmath>
#include <cstdint>

#include "csdkit/common.h"
#include "csdkit/exact_math.h"

namespace csdkit {
namespace raster {

// mul_rn / add_rn / sub_rn come from csdkit/exact_math.h (enclosing namespace).

// floor(a / b) and ceil(a / b) for integers, b > 0 (C++ division truncates towards zero).
CSDKIT_HD int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
CSDKIT_HD int64_t ceil_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a > 0) ? q + 1 : q;
}

template <typename T>
CSDKIT_HD bool is_finite(T x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

template <typename T>
CSDKIT_HD T min3(T a, T b, T c) {
  return a < b ? (a < c ? a : c) : (b < c ? b : c);
}
template <typename T>
CSDKIT_HD T max3(T a, T b, T c) {
  return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

}  // namespace raster
}  // namespace csdkit
