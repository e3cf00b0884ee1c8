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
template <typename T>
CSDKIT_HD void weights_backward_ray(int mode, int64_t begin, int64_t end, const T* t_starts, const T* t_ends,
                                    double eps, const T* trans, const T* alphas, const T* g_w, const T* g_t,
                                    const T* g_a, T* d_input, T* d_tau) {
  using A = typename Acc<T>::type;
  const T stop = T(eps);
  A b = A(0);
  for (int64_t k = end - 1; k >= begin; --k) {
    if (trans[k] < stop) {
      if (d_input) d_input[k] = T(0);
      if (d_tau) d_tau[k] = T(0);
      continue;
    }
    const A tk = A(trans[k]);
    const A ak = A(alphas[k]);
    const A ek = A(1) - ak;
    const A gwk = A(g_w[k]);
    A d = tk * (gwk - b);
    if (mode == kFromDensity) {
      d = ek * (d + (g_a ? A(g_a[k]) : A(0)));
      if (d_tau) d_tau[k] = T(d);
      if (d_input) d_input[k] = T(d * A(t_ends[k] - t_starts[k]));
    } else if (d_input) {
      d_input[k] = T(d);
    }
    b = gwk * ak + A(g_t[k]) + ek * b;
  }
}

// Per-ray weighted sum of C channels: out[c] = sum_i w_i * values[i, c] (values nullptr: weights).
template <typename T>
CSDKIT_HD void accumulate_ray(int64_t begin, int64_t end, int channels, const T* weights, const T* values,
                              T* out) {
  for (int c = 0; c < channels; ++c) out[c] = T(0);
  for (int64_t i = begin; i < end; ++i) {
    const T w = weights[i];
    if (values) {
      const T* v = values + i * channels;
      for (int c = 0; c < channels; ++c) out[c] += w * v[c];
    } else {
      out[0] += w;
    }
  }
}

// Backward of one sample: d_w = sum_c g[c] v[c] (or g[0]), d_v[c] = w g[c].
template <typename T>
CSDKIT_HD void accumulate_backward_sample(int64_t i, int channels, const T* weights, const T* values,
                                          const T* g_ray, T* d_weights, T* d_values) {
  if (d_weights) {
    if (values) {
      T acc = T(0);
      for (int c = 0; c < channels; ++c) acc += g_ray[c] * values[i * channels + c];
      d_weights[i] = acc;
    } else {
      d_weights[i] = g_ray[0];
    }
  }
  if (d_values)
    for (int c = 0; c < channels; ++c) d_values[i * channels + c] = weights[i] * g_ray[c];
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
  const T* d_weights = nullptr;          // [S] cotangent
  const T* d_transmittance = nullptr;    // [S] cotangent
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
