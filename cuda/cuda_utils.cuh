// Helpers for the CUDA launchers: device guard, error checks, launch sizes.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "csdkit/common.h"

namespace csdkit {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Makes `dev.index` current for the scope of a launch and restores the previous device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != index) check(cudaSetDevice(index), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline cudaStream_t stream_of(const Device& dev) { return static_cast<cudaStream_t>(dev.stream); }

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// Checks the last launch of `kernel_name`.
inline void check_launch(const char* kernel_name) { check(cudaGetLastError(), kernel_name); }

}  // namespace cuda
}  // namespace csdkit
