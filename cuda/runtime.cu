// Library information when CUDA kernels are compiled in.
#include <cuda_runtime.h>

#include "csdkit/common.h"

#ifndef CSDKIT_CUDA_ARCHS
#define CSDKIT_CUDA_ARCHS ""
#endif

namespace csdkit {

bool compiled_with_cuda() { return true; }
const char* cuda_architectures() { return CSDKIT_CUDA_ARCHS; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace csdkit
