// Library information and the CPU thread setting.
#include <atomic>
#include <cstdlib>
#include <thread>

#include "csdkit/common.h"

#ifndef CSDKIT_VERSION
#define CSDKIT_VERSION "0.0.0"
#endif

namespace csdkit {

namespace {
int default_threads() {
  if (const char* env = std::getenv("CSDKIT_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}
std::atomic<int> g_threads{0};
}  // namespace

const char* version() { return CSDKIT_VERSION; }

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  check_arg(n >= 1, "set_num_threads", "n must be >= 1, got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
}

#ifndef CSDKIT_WITH_CUDA
bool compiled_with_cuda() { return false; }
const char* cuda_architectures() { return ""; }
int cuda_device_count() { return 0; }
#endif

}  // namespace csdkit
