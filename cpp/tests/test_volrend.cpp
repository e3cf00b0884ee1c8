// Volume-rendering kernels from C++: the golden compositing case, backward against central
// finite differences (with early stop), ray/box cases, and marching (dense box, empty grid, a
// sparse multi-level grid checked against a brute-force step-by-step march).
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "csdkit/volrend_compositing.h"
#include "csdkit/volrend_marching.h"
#include "csdkit/volrend_ray.h"
#include "tests.h"

using namespace csdkit;

namespace {

struct Rendered {
  std::vector<double> w, t, a;
};

Rendered render_density(const std::vector<int64_t>& info, const std::vector<double>& ts,
                        const std::vector<double>& te, const std::vector<double>& sigma, double eps) {
  const int64_t S = int64_t(sigma.size());
  Rendered out{std::vector<double>(S, 0.0), std::vector<double>(S, 0.0), std::vector<double>(S, 0.0)};
  volrend::WeightsArgs<double> a;
  a.n_rays = int64_t(info.size() / 2);
  a.n_samples = S;
  a.packed_info = info.data();
  a.t_starts = ts.data();
  a.t_ends = te.data();
  a.input = sigma.data();
  a.early_stop_eps = eps;
  a.weights = out.w.data();
  a.transmittance = out.t.data();
  a.alphas = out.a.data();
  volrend::weights_forward<double>(a);
  return out;
}

}  // namespace

CSDKIT_TEST(volrend_golden_case) {
  // densities [0.4, 0.8, 0.1, 0.8, 0.1], unit deltas, packed_info [[0,1],[1,0],[1,4]]
  const std::vector<int64_t> info = {0, 1, 1, 0, 1, 4};
  const std::vector<double> sigma = {0.4, 0.8, 0.1, 0.8, 0.1}, ts = {0, 0, 0, 0, 0}, te = {1, 1, 1, 1, 1};
  const auto r = render_density(info, ts, te, sigma, 1e-4);
  const double want_w[5] = {0.3297, 0.5507, 0.0428, 0.2239, 0.0174};
  int fails = 0;
  for (int i = 0; i < 5; ++i) fails += csdkit_tests::expect_near(r.w[i], want_w[i], 5e-5, "weight");
  // d(sum w)/d sigma
  std::vector<double> gw(5, 1.0), ds(5, 0.0);
  volrend::WeightsBackwardArgs<double> b;
  b.n_rays = 3;
  b.n_samples = 5;
  b.packed_info = info.data();
  b.t_starts = ts.data();
  b.t_ends = te.data();
  b.transmittance = r.t.data();
  b.alphas = r.a.data();
  b.d_weights = gw.data();
  b.d_input = ds.data();
  volrend::weights_backward<double>(b);
  const double want_g[5] = {0.6703, 0.1653, 0.1653, 0.1653, 0.1653};
  for (int i = 0; i < 5; ++i) fails += csdkit_tests::expect_near(ds[i], want_g[i], 5e-5, "d sum(w) / d sigma");
  return fails;
}

CSDKIT_TEST(volrend_weights_backward_matches_finite_differences) {
  // Two rays; the second one terminates early (T < 1e-4) so skipped samples must get exactly 0.
  const std::vector<int64_t> info = {0, 4, 4, 6};
  std::vector<double> sigma = {0.3, 1.2, 0.7, 2.0, 2.5, 4.0, 3.5, 0.4, 0.9, 1.1};
  std::vector<double> ts(10), te(10);
  for (int i = 0; i < 10; ++i) {
    ts[i] = 0.1 * i;
    te[i] = ts[i] + 0.6 + 0.05 * i;
  }
  std::mt19937 rng(1);
  std::normal_distribution<double> n01;
  std::vector<double> gw(10), gt(10), ga(10);
  for (int i = 0; i < 10; ++i) {
    gw[i] = n01(rng);
    gt[i] = n01(rng);
    ga[i] = n01(rng);
  }
  const double eps = 1e-4;
  const auto base = render_density(info, ts, te, sigma, eps);
  int fails = 0;
  int skipped = 0;
  for (int i = 0; i < 10; ++i) skipped += base.t[i] == 0.0;
  fails += csdkit_tests::expect_near(skipped > 0, 1, 0, "the second ray should stop early");
  std::vector<double> ds(10), dtau(10);
  volrend::WeightsBackwardArgs<double> b;
  b.n_rays = 2;
  b.n_samples = 10;
  b.packed_info = info.data();
  b.t_starts = ts.data();
  b.t_ends = te.data();
  b.early_stop_eps = eps;
  b.transmittance = base.t.data();
  b.alphas = base.a.data();
  b.d_weights = gw.data();
  b.d_transmittance = gt.data();
  b.d_alphas = ga.data();
  b.d_input = ds.data();
  b.d_tau = dtau.data();
  volrend::weights_backward<double>(b);
  auto loss = [&](const std::vector<double>& s) {
    const auto r = render_density(info, ts, te, s, eps);
    double l = 0;
    for (int i = 0; i < 10; ++i) l += gw[i] * r.w[i] + gt[i] * r.t[i] + ga[i] * r.a[i];
    return l;
  };
  const double h = 1e-6;
  for (int i = 0; i < 10; ++i) {
    auto sp = sigma, sm = sigma;
    sp[i] += h;
    sm[i] -= h;
    const double fd = (loss(sp) - loss(sm)) / (2 * h);
    fails += csdkit_tests::expect_near(ds[i], fd, 1e-6 * (1 + std::fabs(fd)), "d L / d sigma");
    fails += csdkit_tests::expect_near(dtau[i] * (te[i] - ts[i]), ds[i], 1e-12, "d tau consistency");
    if (base.t[i] == 0.0) fails += csdkit_tests::expect_near(ds[i], 0.0, 0.0, "skipped sample gradient");
  }
  return fails;
}

CSDKIT_TEST(volrend_accumulate_packed_and_indexed_agree) {
  const std::vector<int64_t> info = {0, 2, 2, 0, 2, 3};
  const std::vector<int64_t> ray_idx = {2, 0, 2, 0, 2};  // unsorted view of the same samples
  const std::vector<double> w = {0.5, 0.25, 0.1, 0.2, 0.3};
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // [5, 2]
  std::vector<double> out_p(6), out_i(6);
  volrend::AccumulateArgs<double> a;
  a.n_rays = 3;
  a.n_samples = 5;
  a.channels = 2;
  a.packed_info = info.data();
  a.weights = w.data();
  a.values = v.data();
  a.out = out_p.data();
  volrend::accumulate_forward<double>(a);
  // indexed: sample k of the permuted list is original sample perm[k]
  const int perm[5] = {2, 0, 3, 1, 4};
  std::vector<double> w2(5), v2(10);
  for (int k = 0; k < 5; ++k) {
    w2[k] = w[perm[k]];
    v2[2 * k] = v[2 * perm[k]];
    v2[2 * k + 1] = v[2 * perm[k] + 1];
  }
  a.packed_info = nullptr;
  a.ray_indices = ray_idx.data();
  a.weights = w2.data();
  a.values = v2.data();
  a.out = out_i.data();
  volrend::accumulate_forward<double>(a);
  int fails = 0;
  const double want[6] = {0.5 * 1 + 0.25 * 3, 0.5 * 2 + 0.25 * 4, 0, 0, 0.1 * 5 + 0.2 * 7 + 0.3 * 9,
                          0.1 * 6 + 0.2 * 8 + 0.3 * 10};
  for (int k = 0; k < 6; ++k) {
    fails += csdkit_tests::expect_near(out_p[k], want[k], 1e-12, "packed accumulation");
    fails += csdkit_tests::expect_near(out_i[k], want[k], 1e-12, "indexed accumulation");
  }
  return fails;
}

CSDKIT_TEST(volrend_ray_aabb_cases) {
  const float lo[3] = {-1, -1, -1}, hi[3] = {1, 1, 1};
  const float o1[3] = {0, 0, -3}, d1[3] = {0, 0, 1};
  const float o2[3] = {0, 2, 0}, d2[3] = {1, 0, 0};    // parallel to x, outside in y: miss
  const float o3[3] = {0.5f, 0.5f, 0}, d3[3] = {0, 0, -2};  // inside, |d| = 2
  float tn, tf;
  int fails = 0;
  fails += !volrend::ray_aabb<float>(o1, d1, lo, hi, 0.f, volrend::inf_t<float>(), &tn, &tf);
  fails += csdkit_tests::expect_near(tn, 2.0, 0, "t_near") + csdkit_tests::expect_near(tf, 4.0, 0, "t_far");
  fails += volrend::ray_aabb<float>(o2, d2, lo, hi, 0.f, volrend::inf_t<float>(), &tn, &tf);
  fails += csdkit_tests::expect_near(tn, 0.0, 0, "miss t_near") + csdkit_tests::expect_near(tf, 0.0, 0, "miss t_far");
  fails += !volrend::ray_aabb<float>(o3, d3, lo, hi, 0.f, volrend::inf_t<float>(), &tn, &tf);
  fails += csdkit_tests::expect_near(tn, 0.0, 0, "inside t_near") + csdkit_tests::expect_near(tf, 0.5, 0, "t_far");
  return fails;
}

namespace {

// Brute-force reference of the marching rule: every step, no jumps.
std::vector<std::pair<double, double>> brute_march(const volrend::Grid<double>& g, const double* o, const double* d,
                                                   double step) {
  std::vector<std::pair<double, double>> out;
  double tn, tf;
  const int L = g.levels - 1;
  if (!volrend::ray_aabb<double>(o, d, g.lo[L], g.hi[L], 0.0, volrend::inf_t<double>(), &tn, &tf)) return out;
  for (int64_t k = 0;; ++k) {
    const double t = tn + double(k) * step, mid = t + 0.5 * step;
    if (!(mid < tf)) break;
    const double x[3] = {o[0] + mid * d[0], o[1] + mid * d[1], o[2] + mid * d[2]};
    int cell[3];
    const int level = volrend::locate(g, x, cell);
    if (level >= 0 && volrend::cell_occupied(g, level, cell)) out.emplace_back(t, t + step);
  }
  return out;
}

}  // namespace

CSDKIT_TEST(volrend_marching_matches_brute_force) {
  const int levels = 2, res[3] = {8, 8, 8};
  const double aabbs[12] = {-1, -1, -1, 1, 1, 1, -2, -2, -2, 2, 2, 2};
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> bits(size_t(levels) * 512);
  for (auto& b : bits) b = u(rng) < 0.1 ? 1 : 0;
  const int R = 64;
  std::vector<double> o(3 * R), d(3 * R);
  for (int r = 0; r < R; ++r) {
    double n = 0;
    for (int c = 0; c < 3; ++c) {
      o[3 * r + c] = 3 * (2 * u(rng) - 1);
      d[3 * r + c] = 0.8 * (2 * u(rng) - 1) - 0.5 * o[3 * r + c];
      n += d[3 * r + c] * d[3 * r + c];
    }
    for (int c = 0; c < 3; ++c) d[3 * r + c] /= std::sqrt(n);
  }
  volrend::MarchArgs<double> a;
  a.n_rays = R;
  a.rays_o = o.data();
  a.rays_d = d.data();
  a.grid = volrend::make_grid<double>(bits.data(), levels, res, aabbs);
  a.step_size = 0.013;
  std::vector<int64_t> counts(R), info(2 * R);
  a.counts = counts.data();
  volrend::march_count<double>(a);
  int64_t total = 0;
  for (int r = 0; r < R; ++r) {
    info[2 * r] = total;
    info[2 * r + 1] = counts[r];
    total += counts[r];
  }
  std::vector<int64_t> ray_indices(total);
  std::vector<double> t0(total), t1(total);
  a.packed_info = info.data();
  a.ray_indices = ray_indices.data();
  a.t_starts = t0.data();
  a.t_ends = t1.data();
  volrend::march_fill<double>(a);
  int fails = 0;
  fails += csdkit_tests::expect_near(total > 0, 1, 0, "some samples");
  for (int r = 0; r < R; ++r) {
    const auto want = brute_march(a.grid, &o[3 * r], &d[3 * r], a.step_size);
    if (int64_t(want.size()) != counts[r]) {
      fails += csdkit_tests::expect_near(double(counts[r]), double(want.size()), 0, "samples per ray");
      continue;
    }
    for (size_t k = 0; k < want.size(); ++k) {
      fails += csdkit_tests::expect_near(t0[info[2 * r] + k], want[k].first, 0, "t_start");
      fails += ray_indices[info[2 * r] + k] != r;
    }
  }
  // An empty grid yields no samples; a bad step size throws.
  std::fill(bits.begin(), bits.end(), 0);
  volrend::march_count<double>(a);
  for (int r = 0; r < R; ++r) fails += counts[r] != 0;
  a.step_size = 0.0;
  try {
    volrend::march_count<double>(a);
    fails += 1;
  } catch (const std::invalid_argument&) {
  }
  return fails;
}

CSDKIT_TEST(volrend_check_packed_info) {
  bool full = false;
  int fails = 0;
  const std::vector<int64_t> ok = {3, 2, 0, 3, 5, 0};
  fails += volrend::check_packed_info(ok.data(), 3, 5, &full) != 0 || !full;
  const std::vector<int64_t> overlap = {0, 3, 2, 2};
  fails += volrend::check_packed_info(overlap.data(), 2, 5, &full) != 3;
  const std::vector<int64_t> beyond = {4, 2};
  fails += volrend::check_packed_info(beyond.data(), 1, 5, &full) != 2;
  const std::vector<int64_t> negative = {0, -1};
  fails += volrend::check_packed_info(negative.data(), 1, 5, &full) != 1;
  return fails;
}
