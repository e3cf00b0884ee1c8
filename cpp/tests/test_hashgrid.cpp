// Hash-grid encoding from C++: layout, an analytic forward value, and the input gradient
// against central finite differences.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "csdkit/hashgrid.h"
#include "tests.h"

using namespace csdkit;

CSDKIT_TEST(hashgrid_layout_matches_formula) {
  hashgrid::Options opt;  // defaults: 3-D, 16 levels, 2 features, 2**19 rows, base 16, scale 1.447
  const auto L = hashgrid::make_layout(opt);
  int fails = 0;
  fails += L.resolution[0] != 16;               // ceil(15) + 1
  fails += L.offsets[1] != 16 * 16 * 16;        // dense, already a multiple of 8
  fails += (L.offsets[16] - L.offsets[15]) != (1u << 19);  // finest level is hashed
  return fails;
}

CSDKIT_TEST(hashgrid_bad_options_throw) {
  hashgrid::Options opt;
  opt.n_dims = 4;
  try {
    hashgrid::make_layout(opt);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  return 1;
}

// The blocked, vectorized CPU kernels against the per-element functions the CUDA kernels run
// (level_forward, level_backward_params, level_backward_input), point by point: dense and hashed
// levels, linear and smoothstep, 2-D and 3-D, points at 0, at 1 and outside [0, 1].
template <int D>
static int cpu_kernels_match_per_element(int interpolation) {
  constexpr int F = 2;
  hashgrid::Options opt;
  opt.n_dims = D;
  opt.n_levels = 6;
  opt.n_features = F;
  opt.log2_hashmap_size = 10;  // levels >= 2 are hashed
  opt.base_resolution = 4;
  opt.per_level_scale = 2.0f;
  opt.interpolation = interpolation;
  const auto L = hashgrid::make_layout(opt);
  const int64_t n = 77;  // not a multiple of the block size
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(-0.1, 1.1), v(-1.0, 1.0);
  std::vector<double> x(n * D), params(size_t(L.offsets[L.n_levels]) * F), d_out(n * L.n_levels * F);
  for (auto& e : x) e = u(rng);
  for (int d = 0; d < D; ++d) x[d] = 0.0, x[D + d] = 1.0;
  for (auto& e : params) e = v(rng);
  for (auto& e : d_out) e = v(rng);
  std::vector<double> out(d_out.size()), d_params(params.size(), 1.0), d_x(x.size());
  hashgrid::encode_forward<double>(L, n, x.data(), params.data(), out.data());
  hashgrid::encode_backward<double>(L, n, x.data(), params.data(), d_out.data(), d_params.data(), d_x.data(), {},
                                    /*accumulate=*/false);
  std::vector<double> want_out(out.size()), want_dp(params.size(), 0.0), want_dx(x.size(), 0.0);
  auto plain_add = [](double* p, double value) { *p += value; };
  for (int64_t i = 0; i < n; ++i)
    for (int l = 0; l < L.n_levels; ++l) {
      const double* xi = x.data() + i * D;
      const double* g = d_out.data() + (i * L.n_levels + l) * F;
      hashgrid::level_forward<double, D, F>(L, l, xi, params.data(), want_out.data() + (i * L.n_levels + l) * F);
      hashgrid::level_backward_params<double, D, F>(L, l, xi, g, want_dp.data(), plain_add);
      hashgrid::level_backward_input<double, D, F>(L, l, xi, params.data(), g, want_dx.data() + i * D);
    }
  for (int64_t k = 0; k < n * D; ++k) want_dx[k] = hashgrid::mask_clamped(x[k], want_dx[k]);
  int fails = 0;
  auto compare = [&](const std::vector<double>& got, const std::vector<double>& want, const char* what) {
    double worst = 0.0;
    for (size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::fabs(got[k] - want[k]));
    fails += csdkit_tests::expect_near(worst, 0.0, 1e-9, what);
  };
  compare(out, want_out, "forward vs level_forward");
  compare(d_params, want_dp, "d_params vs level_backward_params");
  compare(d_x, want_dx, "d_x vs level_backward_input");
  // accumulate = true (the default) adds to what d_params holds.
  hashgrid::encode_backward<double>(L, n, x.data(), params.data(), d_out.data(), d_params.data(), nullptr);
  for (auto& e : want_dp) e *= 2.0;
  compare(d_params, want_dp, "accumulated d_params");
  return fails;
}

CSDKIT_TEST(hashgrid_cpu_kernels_match_per_element_functions) {
  return cpu_kernels_match_per_element<2>(hashgrid::kLinear) + cpu_kernels_match_per_element<3>(hashgrid::kLinear) +
         cpu_kernels_match_per_element<2>(hashgrid::kSmoothstep) + cpu_kernels_match_per_element<3>(hashgrid::kSmoothstep);
}

CSDKIT_TEST(hashgrid_linear_field_is_reproduced) {
  // One dense 2-D level whose table holds f(i, j) = i + 2 j at vertex (i, j): bilinear
  // interpolation of a linear function is exact, so out = scale*x + 0.5 + 2*(scale*y + 0.5).
  hashgrid::Options opt;
  opt.n_dims = 2;
  opt.n_levels = 1;
  opt.n_features = 1;
  opt.base_resolution = 8;
  const auto L = hashgrid::make_layout(opt);
  const uint32_t res = L.resolution[0];
  std::vector<float> table(L.offsets[1], 0.f);
  for (uint32_t j = 0; j < res; ++j)
    for (uint32_t i = 0; i < res; ++i) table[i + j * res] = float(i) + 2.f * float(j);
  const std::vector<float> x = {0.1f, 0.2f, 0.5f, 0.5f, 0.9f, 0.0f};
  std::vector<float> out(3);
  hashgrid::encode_forward<float>(L, 3, x.data(), table.data(), out.data());
  int fails = 0;
  for (int k = 0; k < 3; ++k) {
    const double want = L.scale[0] * x[2 * k] + 0.5 + 2.0 * (L.scale[0] * x[2 * k + 1] + 0.5);
    fails += csdkit_tests::expect_near(out[k], want, 1e-4, "bilinear value");
  }
  return fails;
}

CSDKIT_TEST(hashgrid_input_gradient_matches_finite_differences) {
  hashgrid::Options opt;
  opt.n_levels = 4;
  opt.log2_hashmap_size = 10;  // finer levels hashed
  opt.interpolation = hashgrid::kSmoothstep;
  const auto L = hashgrid::make_layout(opt);
  const int F = L.n_features, n = 5, out_dim = L.n_levels * F;
  std::mt19937 rng(0);
  std::uniform_real_distribution<double> u(-1.0, 1.0), u01(0.05, 0.95);
  std::vector<double> table(size_t(L.offsets[L.n_levels]) * F), x(n * 3), g(n * out_dim);
  for (auto& v : table) v = u(rng);
  for (auto& v : x) v = u01(rng);
  for (auto& v : g) v = u(rng);
  std::vector<double> dx(n * 3), dparams(table.size(), 0.0);
  hashgrid::encode_backward<double>(L, n, x.data(), table.data(), g.data(), dparams.data(), dx.data());
  int fails = 0;
  const double h = 1e-6;
  std::vector<double> op(n * out_dim), om(n * out_dim);
  for (int i = 0; i < n * 3; ++i) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    hashgrid::encode_forward<double>(L, n, xp.data(), table.data(), op.data());
    hashgrid::encode_forward<double>(L, n, xm.data(), table.data(), om.data());
    double fd = 0.0;
    for (int k = 0; k < n * out_dim; ++k) fd += g[k] * (op[k] - om[k]) / (2 * h);
    fails += csdkit_tests::expect_near(dx[i], fd, 1e-5 * (1 + std::fabs(fd)), "d out / d x");
  }
  return fails;
}
