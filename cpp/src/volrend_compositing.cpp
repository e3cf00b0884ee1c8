// Volume-rendering compositing: dispatch and the CPU kernels (math in csdkit/volrend_compositing.h).
// Every kernel is parallel over rays (each ray's samples are a contiguous range), so the CPU path
// needs no atomics and is deterministic.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "csdkit/parallel.h"
#include "csdkit/volrend_compositing.h"

namespace csdkit {
namespace volrend {

namespace {

// Rays per task: ~512 samples each, so a few hundred rays amortize the task start.
constexpr int64_t kRayGrain = 256;

inline void ray_range(const int64_t* packed_info, int64_t r, int64_t n_samples, const char* fn, int64_t* begin,
                      int64_t* end) {
  const int64_t start = packed_info[2 * r], count = packed_info[2 * r + 1];
  if (!(start >= 0 && count >= 0 && start + count <= n_samples))  // message built only on failure
    check_arg(false, fn,
              "packed_info[" + std::to_string(r) + "] = (" + std::to_string(start) + ", " + std::to_string(count) +
                  ") is outside the " + std::to_string(n_samples) + " samples");
  *begin = start;
  *end = start + count;
}

[[noreturn]] void bad_ray_index(const char* fn, int64_t i, int64_t r) {
  throw std::invalid_argument(std::string(fn) + "(): ray_indices[" + std::to_string(i) + "] = " +
                              std::to_string(r) + " is outside [0, n_rays)");
}

void check_sizes(int64_t n_rays, int64_t n_samples, const void* packed_info, const char* fn) {
  check_arg(n_rays >= 0 && n_samples >= 0, fn,
            "n_rays and n_samples must be >= 0, got " + std::to_string(n_rays) + ", " + std::to_string(n_samples));
  check_arg(n_rays == 0 || packed_info != nullptr, fn, "packed_info must not be null");
}

}  // namespace

int check_packed_info(const int64_t* packed_info, int64_t n_rays, int64_t n_samples, bool* covers_all) {
  int64_t total = 0, prev_end = 0;
  bool ordered = true;
  for (int64_t r = 0; r < n_rays; ++r) {
    const int64_t start = packed_info[2 * r], count = packed_info[2 * r + 1];
    if (start < 0 || count < 0) return 1;
    if (count == 0) continue;
    if (start > n_samples - count) return 2;
    ordered = ordered && start >= prev_end;
    prev_end = start + count;
    total += count;
  }
  if (!ordered) {
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (int64_t r = 0; r < n_rays; ++r)
      if (packed_info[2 * r + 1] > 0) ranges.emplace_back(packed_info[2 * r], packed_info[2 * r + 1]);
    std::sort(ranges.begin(), ranges.end());
    for (size_t k = 1; k < ranges.size(); ++k)
      if (ranges[k].first < ranges[k - 1].first + ranges[k - 1].second) return 3;
  }
  if (covers_all) *covers_all = total == n_samples;
  return 0;
}

template <typename T>
void weights_forward_cpu(const WeightsArgs<T>& a) {
  parallel_for(a.n_rays, kRayGrain, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      int64_t begin, end;
      ray_range(a.packed_info, r, a.n_samples, "volrend::weights_forward", &begin, &end);
      weights_forward_ray<T>(a.mode, begin, end, a.t_starts, a.t_ends, a.input, a.early_stop_eps, a.weights,
                             a.transmittance, a.alphas);
    }
  });
}

template <typename T>
void weights_backward_cpu(const WeightsBackwardArgs<T>& a) {
  parallel_for(a.n_rays, kRayGrain, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      int64_t begin, end;
      ray_range(a.packed_info, r, a.n_samples, "volrend::weights_backward", &begin, &end);
      weights_backward_ray<T>(a.mode, begin, end, a.t_starts, a.t_ends, a.early_stop_eps, a.transmittance,
                              a.alphas, a.d_weights, a.d_transmittance, a.d_alphas, a.d_input, a.d_tau);
    }
  });
}

template <typename T>
void accumulate_forward_cpu(const AccumulateArgs<T>& a) {
  const int C = a.channels;
  if (a.packed_info) {
    parallel_for(a.n_rays, kRayGrain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t begin, end;
        ray_range(a.packed_info, r, a.n_samples, "volrend::accumulate_forward", &begin, &end);
        accumulate_ray<T>(begin, end, C, a.weights, a.values, a.out + r * C);
      }
    });
    return;
  }
  // Unsorted ray indices: a sequential scatter keeps the sums deterministic.
  for (int64_t i = 0; i < a.n_rays * C; ++i) a.out[i] = T(0);
  for (int64_t i = 0; i < a.n_samples; ++i) {
    const int64_t r = a.ray_indices[i];
    if (!(r >= 0 && r < a.n_rays)) bad_ray_index("volrend::accumulate_forward", i, r);
    T* o = a.out + r * C;
    if (a.values) {
      for (int c = 0; c < C; ++c) o[c] += a.weights[i] * a.values[i * C + c];
    } else {
      o[0] += a.weights[i];
    }
  }
}

template <typename T>
void accumulate_backward_cpu(const AccumulateArgs<T>& a) {
  const int C = a.channels;
  if (a.packed_info) {
    parallel_for(a.n_rays, kRayGrain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        int64_t begin, end;
        ray_range(a.packed_info, r, a.n_samples, "volrend::accumulate_backward", &begin, &end);
        accumulate_backward_ray<T>(begin, end, C, a.weights, a.values, a.d_out + r * C, a.d_weights, a.d_values);
      }
    });
    return;
  }
  parallel_for(a.n_samples, 8192, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t r = a.ray_indices[i];
      if (!(r >= 0 && r < a.n_rays)) bad_ray_index("volrend::accumulate_backward", i, r);
      accumulate_backward_sample<T>(i, C, a.weights, a.values, a.d_out + r * C, a.d_weights, a.d_values);
    }
  });
}

template <typename T>
void weights_forward(const WeightsArgs<T>& a, Device dev) {
  const char* fn = "volrend::weights_forward";
  check_sizes(a.n_rays, a.n_samples, a.packed_info, fn);
  check_arg(a.mode == kFromDensity || a.mode == kFromAlpha, fn, "mode must be 0 (density) or 1 (alpha)");
  check_arg(a.early_stop_eps >= 0 && a.early_stop_eps <= 1, fn, "early_stop_eps must be in [0, 1]");
  check_arg(a.n_samples == 0 || (a.input && a.weights && a.transmittance), fn,
            "input, weights and transmittance must not be null");
  check_arg(a.mode == kFromAlpha || a.n_samples == 0 || (a.t_starts && a.t_ends), fn,
            "t_starts and t_ends must not be null in density mode");
  if (a.n_rays == 0) return;
  if (dev.is_cuda())
    weights_forward_cuda<T>(a, dev);
  else
    weights_forward_cpu<T>(a);
}

template <typename T>
void weights_backward(const WeightsBackwardArgs<T>& a, Device dev) {
  const char* fn = "volrend::weights_backward";
  check_sizes(a.n_rays, a.n_samples, a.packed_info, fn);
  check_arg(a.mode == kFromDensity || a.mode == kFromAlpha, fn, "mode must be 0 (density) or 1 (alpha)");
  check_arg(a.n_samples == 0 || (a.transmittance && a.alphas), fn, "transmittance and alphas must not be null");
  check_arg(a.mode == kFromAlpha || a.n_samples == 0 || (a.t_starts && a.t_ends), fn,
            "t_starts and t_ends must not be null in density mode");
  if (a.n_rays == 0 || (!a.d_input && !a.d_tau)) return;
  if (dev.is_cuda())
    weights_backward_cuda<T>(a, dev);
  else
    weights_backward_cpu<T>(a);
}

template <typename T>
void accumulate_forward(const AccumulateArgs<T>& a, Device dev) {
  const char* fn = "volrend::accumulate_forward";
  check_arg(a.n_rays >= 0 && a.n_samples >= 0 && a.channels >= 1, fn, "sizes must be >= 0 and channels >= 1");
  check_arg(a.n_rays == 0 || a.packed_info || a.ray_indices || a.n_samples == 0, fn,
            "give packed_info or ray_indices");
  check_arg(a.n_samples == 0 || a.weights, fn, "weights must not be null");
  check_arg(a.n_samples == 0 || a.values || a.channels == 1, fn, "channels must be 1 when values is null");
  check_arg(a.n_rays == 0 || a.out, fn, "out must not be null");
  if (a.n_rays == 0) return;
  if (dev.is_cuda())
    accumulate_forward_cuda<T>(a, dev);
  else
    accumulate_forward_cpu<T>(a);
}

template <typename T>
void accumulate_backward(const AccumulateArgs<T>& a, Device dev) {
  const char* fn = "volrend::accumulate_backward";
  check_arg(a.n_rays >= 0 && a.n_samples >= 0 && a.channels >= 1, fn, "sizes must be >= 0 and channels >= 1");
  check_arg(a.n_rays == 0 || a.packed_info || a.ray_indices || a.n_samples == 0, fn,
            "give packed_info or ray_indices");
  check_arg(a.n_samples == 0 || (a.weights && a.d_out), fn, "weights and d_out must not be null");
  check_arg(a.n_samples == 0 || !a.d_values || a.values, fn, "d_values needs values");
  if (a.n_rays == 0 || a.n_samples == 0 || (!a.d_weights && !a.d_values)) return;
  if (dev.is_cuda())
    accumulate_backward_cuda<T>(a, dev);
  else
    accumulate_backward_cpu<T>(a);
}

#define CSDKIT_INSTANTIATE(T)                                                  \
  template void weights_forward<T>(const WeightsArgs<T>&, Device);             \
  template void weights_backward<T>(const WeightsBackwardArgs<T>&, Device);    \
  template void accumulate_forward<T>(const AccumulateArgs<T>&, Device);       \
  template void accumulate_backward<T>(const AccumulateArgs<T>&, Device);      \
  template void weights_forward_cpu<T>(const WeightsArgs<T>&);                 \
  template void weights_backward_cpu<T>(const WeightsBackwardArgs<T>&);        \
  template void accumulate_forward_cpu<T>(const AccumulateArgs<T>&);           \
  template void accumulate_backward_cpu<T>(const AccumulateArgs<T>&);
CSDKIT_INSTANTIATE(float)
CSDKIT_INSTANTIATE(double)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
#define CSDKIT_NO_CUDA(name, Args)                                                                 \
  template <typename T>                                                                            \
  void name##_cuda(const Args<T>&, Device) {                                                       \
    throw std::runtime_error("volrend::" #name "(): csdkit was not compiled with CUDA support");  \
  }                                                                                                \
  template void name##_cuda<float>(const Args<float>&, Device);                                    \
  template void name##_cuda<double>(const Args<double>&, Device);
CSDKIT_NO_CUDA(weights_forward, WeightsArgs)
CSDKIT_NO_CUDA(weights_backward, WeightsBackwardArgs)
CSDKIT_NO_CUDA(accumulate_forward, AccumulateArgs)
CSDKIT_NO_CUDA(accumulate_backward, AccumulateArgs)
#undef CSDKIT_NO_CUDA
#endif

}  // namespace volrend
}  // namespace csdkit
