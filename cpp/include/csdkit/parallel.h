// csdkit/parallel.h -- a minimal, deterministic parallel_for over std::thread.
//
// The range [0, n) is split into at most num_threads() contiguous chunks of at least `grain`
// items; chunk c always covers the same items for the same (n, grain, threads), so reductions
// done per chunk are reproducible. The calling thread runs the first chunk itself.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include "csdkit/common.h"

namespace csdkit {

template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(num_threads(), max_chunks));
  if (chunks == 1) {
    fn(int64_t(0), n);
    return;
  }
  const int64_t per = (n + chunks - 1) / chunks;
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(chunks);
  workers.reserve(chunks - 1);
  for (int64_t c = 1; c < chunks; ++c) {
    const int64_t b = c * per, e = std::min(n, b + per);
    if (b >= e) break;
    workers.emplace_back([&, b, e, c] {
      try {
        fn(b, e);
      } catch (...) {
        errors[c] = std::current_exception();
      }
    });
  }
  try {
    fn(int64_t(0), std::min(n, per));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& w : workers) w.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace csdkit
