// Race-free, deterministic scatter-add on the CPU for the raster backward passes (many pixels add
// into few vertices or texels). The items are split into a fixed number of contiguous chunks; each
// chunk accumulates into its own zeroed buffer, and the buffers are summed in chunk order. The
// chunk count depends only on (n_items, acc_size, thread count), so results are reproducible.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "csdkit/parallel.h"

namespace csdkit {
namespace raster {

// Private buffers are capped at this many bytes in total (fewer chunks for huge outputs).
constexpr int64_t kScatterBufferBytes = int64_t(512) << 20;

// body(begin, end, acc) processes items [begin, end) adding into acc[0, acc_size);
// finish(total) receives the summed accumulator. When only one chunk is used and `direct` is not
// null, body writes into `direct` itself and finish is not called.
template <typename T, typename Body, typename Finish>
void chunked_scatter(int64_t n_items, int64_t grain, int64_t acc_size, T* direct, Body&& body, Finish&& finish) {
  if (n_items <= 0 || acc_size <= 0) return;
  const int64_t by_items = std::max<int64_t>(1, n_items / std::max<int64_t>(grain, 1));
  const int64_t by_memory = std::max<int64_t>(1, kScatterBufferBytes / (acc_size * int64_t(sizeof(T))));
  const int64_t chunks = std::min<int64_t>({int64_t(num_threads()), by_items, by_memory});
  if (chunks == 1 && direct != nullptr) {
    body(int64_t(0), n_items, direct);
    return;
  }
  // Uninitialised storage: each chunk zeroes (and first-touches) its own buffer in parallel.
  std::unique_ptr<T[]> storage(new T[size_t(chunks * acc_size)]);
  T* buffers = storage.get();
  const int64_t per = (n_items + chunks - 1) / chunks;
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      T* acc = buffers + c * acc_size;
      std::fill(acc, acc + acc_size, T(0));
      const int64_t b = c * per, e = std::min(n_items, b + per);
      if (b < e) body(b, e, acc);
    }
  });
  if (chunks > 1) {
    parallel_for(acc_size, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t c = 1; c < chunks; ++c) {
        const T* src = buffers + c * acc_size;
        for (int64_t i = b; i < e; ++i) buffers[i] += src[i];
      }
    });
  }
  finish(static_cast<const T*>(buffers));
}

// Adds total[0, n) into out[0, n) in parallel.
template <typename T>
void add_into(T* out, const T* total, int64_t n) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] += total[i];
  });
}

}  // namespace raster
}  // namespace csdkit
