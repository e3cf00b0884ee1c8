// csdkit/exact_math.h -- separately rounded float arithmetic shared by the CPU and CUDA kernels.
//
// nvcc contracts `a * b + c` into one fused multiply-add by default; the CPU build (x86-64 without
// -mfma/-march flags) and the PyTorch references do not. Kernels whose discrete decisions depend on
// exact values (rasterizer coverage and clipping, ray-marching sample positions) route such
// products and sums through these helpers, which force separately rounded operations on the device
// and are plain operators on the host.
#pragma once

#include "csdkit/common.h"

namespace csdkit {

CSDKIT_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
CSDKIT_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
CSDKIT_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
CSDKIT_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <typename T>
CSDKIT_HD T sub_rn(T a, T b) {
  return add_rn(a, -b);
}

}  // namespace csdkit
