// csdkit/common.h -- macros and small helpers shared by the CPU and CUDA kernels.
//
// Per-element math is written once as CSDKIT_HD inline functions: the CPU kernels in cpp/src call
// them in loops, the CUDA kernels in cuda/ call them per thread. CPU tests therefore exercise the
// exact arithmetic the GPU runs; CUDA code adds only launch shape and atomics.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define CSDKIT_HD __host__ __device__ __forceinline__
#define CSDKIT_DEVICE __device__ __forceinline__
#else
#define CSDKIT_HD inline
#define CSDKIT_DEVICE inline
#endif

// Unroll hint for loops with compile-time trip counts (both compilers).
#if defined(__CUDACC__)
#define CSDKIT_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define CSDKIT_UNROLL _Pragma("GCC unroll 8")
#elif defined(__clang__)
#define CSDKIT_UNROLL _Pragma("unroll")
#else
#define CSDKIT_UNROLL
#endif

// Marks a hot, vectorizable CPU loop to be compiled twice, for baseline x86-64 and for AVX2, with the
// variant chosen once at load time (GCC/Clang function multi-versioning via ifunc, x86-64 Linux).
// Wheels stay portable (no -march flags); elsewhere it expands to nothing. AVX2 without FMA: the
// arithmetic (and so every result) is the same in both variants.
#if !defined(__CUDACC__) && defined(__x86_64__) && defined(__linux__) && \
    ((defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8) || (defined(__clang__) && __clang_major__ >= 14))
#define CSDKIT_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CSDKIT_CPU_CLONES
#endif
// Helpers called from a CSDKIT_CPU_CLONES function must be inlined into it to get its instruction set.
#if defined(__GNUC__) || defined(__clang__)
#define CSDKIT_FORCE_INLINE inline __attribute__((always_inline))
#else
#define CSDKIT_FORCE_INLINE inline
#endif

namespace csdkit {

// Where a kernel runs. `device < 0` means the CPU; otherwise a CUDA device ordinal.
// `stream` is a cudaStream_t cast to a pointer (nullptr = the legacy default stream).
struct Device {
  int index = -1;
  void* stream = nullptr;
  bool is_cuda() const { return index >= 0; }
};

// Raised for invalid arguments of the C++ API (pybind11 maps it to ValueError).
inline void check_arg(bool ok, const std::string& function, const std::string& message) {
  if (!ok) throw std::invalid_argument(function + "(): " + message);
}

// Library information: version, whether CUDA kernels were compiled, for which architectures.
const char* version();
bool compiled_with_cuda();
const char* cuda_architectures();
int cuda_device_count();  // 0 when not compiled with CUDA or no device/driver is present

// CPU threads used by the CPU kernels (default: hardware concurrency, or CSDKIT_NUM_THREADS).
int num_threads();
void set_num_threads(int n);

}  // namespace csdkit
