// csdkit/volrend_compositing.h -- volume-rendering compositing: weights from densities or alphas
// (forward and exact backward) and accumulation of per-sample values along rays.
// The pure-PyTorch twin (the specification) is python/csdkit/ops/reference/compositing.py.
//
// Along ray r (samples start .. start+count-1 of packed_info[r] = (start, count)):
//   from densities: tau_i = sigma_i * (t_end_i - t_start_i),  alpha_i = -expm1(-tau_i)
//   from alphas:    alpha_i given
//   T_0 = 1,  T_{i+1} = T_i * (1 - alpha_i),  w_i = T_i * alpha_i.
// Early stop: the first sample with T_i < eps and all later samples of the ray are not rendered:
// w = T = alpha = 0 there, and their gradient is 0.
//
// Backward (one reverse pass per ray, no division by 1 - alpha): with cotangents gw, gT, ga and
// e_k = 1 - alpha_k, the suffix sum
//   B_k = sum_{i>k} (gw_i alpha_i + gT_i) prod_{k<j<i} e_j,   B_{k-1} = gw_k alpha_k + gT_k + e_k B_k
// gives   dL/dalpha_k = T_k (gw_k - B_k) + ga_k        (alpha mode: ga = 0)
//         dL/dtau_k   = e_k (T_k (gw_k - B_k) + ga_k)  (density mode),  dL/dsigma_k = dL/dtau_k * delta_k.
#pragma once

#include <cmath>
#include <cstdint>

#include "csdkit/common.h"

namespace csdkit {
namespace volrend {

enum WeightsMode : int { kFromDensity = 0, kFromAlpha = 1 };

// The precision transmittance is carried in along a ray (double for float inputs: long rays).
template <typename T>
struct Acc {
  using type = double;
};

CSDKIT_HD float expm1_t(float v) { return expm1f(v); }
CSDKIT_HD double expm1_t(double v) { return ::expm1(v); }

// Forward along one ray: samples [begin, end). Writes every sample of the range.
template <typename T>
CSDKIT_HD void weights_forward_ray(int mode, int64_t begin, int64_t end, const T* t_starts, const T* t_ends,
                                   const T* input, double eps, T* weights, T* trans, T* alphas) {
  using A = typename Acc<T>::type;
  A t = A(1);
  int64_t i = begin;
  const T stop = T(eps);  // compared in T, exactly as the backward reads the saved transmittance
  for (; i < end; ++i) {
    if (T(t) < stop) break;
    const T a = mode == kFromDensity ? -expm1_t(-(input[i] * (t_ends[i] - t_starts[i]))) : input[i];
    weights[i] = T(t * A(a));
    trans[i] = T(t);
    if (alphas) alphas[i] = a;
    t *= A(1) - A(a);
  }
  for (; i < end; ++i) {
    weights[i] = T(0);
    trans[i] = T(0);
    if (alphas) alphas[i] = T(0);
  }
}

// Backward along one ray from the saved transmittance and alphas. A sample was rendered iff its
// saved transmittance is >= eps (skipped samples were saved as 0 < eps; with eps = 0 all were
// rendered). Writes d_input (d sigma or d alpha) and, in density mode, optionally d_tau.
// Null cotangents g_w / g_t / g_a stand for zeros.
template <typename T>
CSDKIT_HD void weights_backward_ray(int mode, int64_t begin, int64_t end, const T* t_starts, const T* t_ends,
                                    double eps, const T* trans, const T* alphas, const T* g_w, const T* g_t,
                                    const T* g_a, T* d_input, T* d_tau) {
  using A = typename Acc<T>::type;
  const T stop = T(eps);
  // Skipped samples form a suffix of the ray: zero their gradients, then run the reverse pass.
  int64_t last = end;
  while (last > begin && trans[last - 1] < stop) --last;
  for (int64_t k = last; k < end; ++k) {
    if (d_input) d_input[k] = T(0);
    if (d_tau) d_tau[k] = T(0);
  }
  A b = A(0);
  for (int64_t k = last - 1; k >= begin; --k) {
    const A tk = A(trans[k]);
    const A ak = A(alphas[k]);
    const A ek = A(1) - ak;
    const A gwk = g_w ? A(g_w[k]) : A(0);
    A d = tk * (gwk - b);
    if (mode == kFromDensity) {
      d = ek * (d + (g_a ? A(g_a[k]) : A(0)));
      if (d_tau) d_tau[k] = T(d);
      if (d_input) d_input[k] = T(d * A(t_ends[k] - t_starts[k]));
    } else if (d_input) {
      d_input[k] = T(d);
    }
    b = gwk * ak + (g_t ? A(g_t[k]) : A(0)) + ek * b;
  }
}

// Per-ray weighted sum of C channels: out[c] = sum_i w_i * values[i, c] (values nullptr: weights).
// Sums live in registers, in two interleaved partial sums (even / odd samples) so that the adds
// pipeline; the order is fixed, so results are deterministic.
constexpr int kAccChannels = 4;  // channels kept in registers by the fixed-size paths

template <typename T, int C>
CSDKIT_HD void accumulate_ray_fixed(int64_t begin, int64_t end, const T* weights, const T* values, T* out) {
  T acc0[C] = {}, acc1[C] = {};
  int64_t i = begin;
  for (; i + 1 < end; i += 2) {
    const T w0 = weights[i], w1 = weights[i + 1];
    const T* v0 = values + i * C;
    for (int c = 0; c < C; ++c) {
      acc0[c] += w0 * v0[c];
      acc1[c] += w1 * v0[C + c];
    }
  }
  if (i < end)
    for (int c = 0; c < C; ++c) acc0[c] += weights[i] * values[i * C + c];
  for (int c = 0; c < C; ++c) out[c] = acc0[c] + acc1[c];
}

template <typename T>
CSDKIT_HD void accumulate_ray(int64_t begin, int64_t end, int channels, const T* weights, const T* values,
                              T* out) {
  if (!values) {
    T acc0 = T(0), acc1 = T(0);
    int64_t i = begin;
    for (; i + 1 < end; i += 2) {
      acc0 += weights[i];
      acc1 += weights[i + 1];
    }
    if (i < end) acc0 += weights[i];
    out[0] = acc0 + acc1;
    // values is null for weight sums (channels == 1) and when there are no samples at all (empty
    // tensors have no data): the remaining channels of such a ray are zero.
    for (int c = 1; c < channels; ++c) out[c] = T(0);
    return;
  }
  switch (channels) {
    case 1: return accumulate_ray_fixed<T, 1>(begin, end, weights, values, out);
    case 2: return accumulate_ray_fixed<T, 2>(begin, end, weights, values, out);
    case 3: return accumulate_ray_fixed<T, 3>(begin, end, weights, values, out);
    case 4: return accumulate_ray_fixed<T, 4>(begin, end, weights, values, out);
    default: break;
  }
  for (int c = 0; c < channels; ++c) {
    T acc = T(0);
    for (int64_t i = begin; i < end; ++i) acc += weights[i] * values[i * channels + c];
    out[c] = acc;
  }
}

// Backward of one sample: d_w = sum_c g[c] v[c] (or g[0]), d_v[c] = w g[c].
template <typename T>
CSDKIT_HD void accumulate_backward_sample(int64_t i, int channels, const T* weights, const T* values,
                                          const T* g_ray, T* d_weights, T* d_values) {
  if (d_weights) {
    if (values) {
      T acc = T(0);
      const T* v = values + i * channels;
      for (int c = 0; c < channels; ++c) acc += g_ray[c] * v[c];
      d_weights[i] = acc;
    } else {
      d_weights[i] = g_ray[0];
    }
  }
  if (d_values) {
    const T w = weights[i];
    T* dv = d_values + i * channels;
    for (int c = 0; c < channels; ++c) dv[c] = w * g_ray[c];
  }
}

// Backward of one ray's samples [begin, end) with the ray's output gradient g_ray[C].
template <typename T, int C>
CSDKIT_HD void accumulate_backward_ray_fixed(int64_t begin, int64_t end, const T* weights, const T* values,
                                             const T* g_ray, T* d_weights, T* d_values) {
  T g[C];
  for (int c = 0; c < C; ++c) g[c] = g_ray[c];  // in registers: the outputs cannot alias them
  if (d_weights)
    for (int64_t i = begin; i < end; ++i) {
      T acc = T(0);
      for (int c = 0; c < C; ++c) acc += g[c] * values[i * C + c];
      d_weights[i] = acc;
    }
  if (d_values)
    for (int64_t i = begin; i < end; ++i) {
      const T w = weights[i];
      for (int c = 0; c < C; ++c) d_values[i * C + c] = w * g[c];
    }
}

template <typename T>
CSDKIT_HD void accumulate_backward_ray(int64_t begin, int64_t end, int channels, const T* weights, const T* values,
                                       const T* g_ray, T* d_weights, T* d_values) {
  if (!values) {
    const T g = g_ray[0];
    if (d_weights)
      for (int64_t i = begin; i < end; ++i) d_weights[i] = g;
    return;
  }
  switch (channels) {
    case 1: return accumulate_backward_ray_fixed<T, 1>(begin, end, weights, values, g_ray, d_weights, d_values);
    case 2: return accumulate_backward_ray_fixed<T, 2>(begin, end, weights, values, g_ray, d_weights, d_values);
    case 3: return accumulate_backward_ray_fixed<T, 3>(begin, end, weights, values, g_ray, d_weights, d_values);
    case 4: return accumulate_backward_ray_fixed<T, 4>(begin, end, weights, values, g_ray, d_weights, d_values);
    default: break;
  }
  for (int64_t i = begin; i < end; ++i)
    accumulate_backward_sample<T>(i, channels, weights, values, g_ray, d_weights, d_values);
}

// ---- ops ----------------------------------------------------------------------------------------
// Samples outside every packed range are left untouched by all ops (callers zero them if needed).
template <typename T>
struct WeightsArgs {
  int mode = kFromDensity;
  int64_t n_rays = 0;
  int64_t n_samples = 0;
  const int64_t* packed_info = nullptr;  // [n_rays, 2] (start, count), non-overlapping ranges
  const T* t_starts = nullptr;           // [S] (density mode)
  const T* t_ends = nullptr;             // [S] (density mode)
  const T* input = nullptr;              // [S] densities (density mode) or alphas (alpha mode)
  double early_stop_eps = 1e-4;          // T < eps stops the ray; 0 disables
  T* weights = nullptr;                  // [S] out
  T* transmittance = nullptr;            // [S] out
  T* alphas = nullptr;                   // [S] out (density mode; may be nullptr)
};

template <typename T>
struct WeightsBackwardArgs {
  int mode = kFromDensity;
  int64_t n_rays = 0;
  int64_t n_samples = 0;
  const int64_t* packed_info = nullptr;  // [n_rays, 2]
  const T* t_starts = nullptr;           // [S] (density mode)
  const T* t_ends = nullptr;             // [S] (density mode)
  double early_stop_eps = 1e-4;          // as in the forward
  const T* transmittance = nullptr;      // [S] saved forward output
  const T* alphas = nullptr;             // [S] saved forward output (alpha mode: the input)
  const T* d_weights = nullptr;          // [S] cotangent (nullptr = 0)
  const T* d_transmittance = nullptr;    // [S] cotangent (nullptr = 0)
  const T* d_alphas = nullptr;           // [S] cotangent (density mode; nullptr = 0)
  T* d_input = nullptr;                  // [S] out: d sigma or d alpha (nullptr: not needed)
  T* d_tau = nullptr;                    // [S] out: d (sigma * delta) (density mode; nullptr: not needed)
};

template <typename T>
struct AccumulateArgs {
  int64_t n_rays = 0;
  int64_t n_samples = 0;
  int channels = 1;
  const int64_t* packed_info = nullptr;  // [n_rays, 2], or nullptr when ray_indices is given
  const int64_t* ray_indices = nullptr;  // [S] in [0, n_rays) (any order)
  const T* weights = nullptr;            // [S]
  const T* values = nullptr;             // [S, channels], or nullptr to sum the weights (channels = 1)
  T* out = nullptr;                      // [n_rays, channels] out (forward)
  const T* d_out = nullptr;              // [n_rays, channels] cotangent (backward)
  T* d_weights = nullptr;                // [S] out (backward; nullptr: not needed)
  T* d_values = nullptr;                 // [S, channels] out (backward; nullptr: not needed)
};

// Validation of packed_info on the host (CPU memory): 0 = valid, 1 = a negative start or count,
// 2 = a range beyond n_samples, 3 = overlapping ranges. *covers_all tells whether every sample
// belongs to a ray. O(n_rays), plus a sort when the non-empty ranges are not in order.
int check_packed_info(const int64_t* packed_info, int64_t n_rays, int64_t n_samples, bool* covers_all);

template <typename T>
void weights_forward(const WeightsArgs<T>& args, Device dev = {});
template <typename T>
void weights_backward(const WeightsBackwardArgs<T>& args, Device dev = {});
template <typename T>
void accumulate_forward(const AccumulateArgs<T>& args, Device dev = {});
template <typename T>
void accumulate_backward(const AccumulateArgs<T>& args, Device dev = {});

template <typename T>
void weights_forward_cpu(const WeightsArgs<T>& args);
template <typename T>
void weights_backward_cpu(const WeightsBackwardArgs<T>& args);
template <typename T>
void accumulate_forward_cpu(const AccumulateArgs<T>& args);
template <typename T>
void accumulate_backward_cpu(const AccumulateArgs<T>& args);
template <typename T>
void weights_forward_cuda(const WeightsArgs<T>& args, Device dev);
template <typename T>
void weights_backward_cuda(const WeightsBackwardArgs<T>& args, Device dev);
template <typename T>
void accumulate_forward_cuda(const AccumulateArgs<T>& args, Device dev);
template <typename T>
void accumulate_backward_cuda(const AccumulateArgs<T>& args, Device dev);

}  // namespace volrend
}  // namespace csdkit
