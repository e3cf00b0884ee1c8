// Rasterizer family from C++: fill rule (no cracks, no double hits), depth test, barycentric
// conventions, position gradients against finite differences, interpolation and texturing.
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "csdkit/raster.h"
#include "csdkit/raster_antialias.h"
#include "csdkit/raster_interpolate.h"
#include "csdkit/raster_texture.h"
#include "tests.h"

using namespace csdkit;

namespace {

raster::Params params(int64_t v, int64_t t, int h, int w) {
  raster::Params p;
  p.n_vertices = v;
  p.n_triangles = t;
  p.height = h;
  p.width = w;
  return p;
}

}  // namespace

CSDKIT_TEST(raster_fan_covers_every_pixel_exactly_once) {
  // A fan of 7 triangles around a centre that falls exactly on a pixel centre, with spokes through
  // pixel centres and corners: each pixel must be covered by exactly one triangle.
  const int H = 15, W = 15, n = 7;
  std::vector<float> pos;
  pos.insert(pos.end(), {0.f, 0.f, 0.f, 1.f});  // NDC (0, 0): the centre of pixel (7, 7)
  for (int k = 0; k < n; ++k) {
    const double a = 2 * M_PI * k / n + 0.3;
    pos.insert(pos.end(), {float(4 * std::cos(a)), float(4 * std::sin(a)), 0.f, 1.f});
  }
  std::vector<int> count(H * W, 0);
  for (int k = 0; k < n; ++k) {
    const std::vector<int32_t> tri = {0, 1 + k, 1 + (k + 1) % n};
    std::vector<float> rast(H * W * 4);
    raster::rasterize<float>(params(n + 1, 1, H, W), pos.data(), tri.data(), rast.data());
    for (int i = 0; i < H * W; ++i) count[i] += rast[i * 4 + 3] > 0.f;
  }
  int fails = 0;
  for (int i = 0; i < H * W; ++i) fails += count[i] != 1;
  if (fails) std::printf("  %d pixels not covered exactly once\n", fails);
  return fails;
}

CSDKIT_TEST(raster_nearest_fragment_wins) {
  const std::vector<float> pos = {-1, -1, 0.5f, 1, 1, -1, 0.5f, 1, 0, 1, 0.5f, 1,    // far
                                  -1, -1, -0.5f, 1, 1, -1, -0.5f, 1, 0, 1, -0.5f, 1};  // near
  const std::vector<int32_t> tri = {0, 1, 2, 3, 4, 5};
  std::vector<float> rast(8 * 8 * 4);
  raster::rasterize<float>(params(6, 2, 8, 8), pos.data(), tri.data(), rast.data());
  int fails = 0, hits = 0;
  for (int i = 0; i < 64; ++i) {
    if (rast[i * 4 + 3] == 0.f) continue;
    ++hits;
    fails += rast[i * 4 + 3] != 2.f;
    fails += csdkit_tests::expect_near(rast[i * 4 + 2], -0.5, 1e-6, "depth of the near triangle");
  }
  fails += hits < 20;
  return fails;
}

CSDKIT_TEST(raster_barycentrics_follow_nvdiffrast_convention) {
  // Pixel (row 0, col 0) of an 8x8 image is at NDC (-7/8, -7/8); u weights vertex 0, v vertex 1.
  const std::vector<double> pos = {-1, -1, 0, 1, 1, -1, 0, 1, -1, 0, 0, 1};
  const std::vector<int32_t> tri = {0, 1, 2};
  std::vector<double> rast(8 * 8 * 4);
  raster::rasterize<double>(params(3, 1, 8, 8), pos.data(), tri.data(), rast.data());
  int fails = 0;
  fails += csdkit_tests::expect_near(rast[0], 1.0 - 1.0 / 16 - 1.0 / 8, 1e-12, "u at pixel (0, 0)");
  fails += csdkit_tests::expect_near(rast[1], 1.0 / 16, 1e-12, "v at pixel (0, 0)");
  fails += csdkit_tests::expect_near(rast[3], 1.0, 0.0, "triangle id + 1");
  fails += csdkit_tests::expect_near(rast[(7 * 8 + 0) * 4 + 3], 0.0, 0.0, "top row is background");
  return fails;
}

CSDKIT_TEST(raster_position_gradient_matches_finite_differences) {
  // Perspective triangle (distinct w): d/dpos of g . (u, v, z/w) at every covered pixel.
  std::vector<double> pos = {-0.8, -0.7, 0.2, 1.0, 1.1, -0.9, 0.9, 2.0, -0.2, 1.3, 0.5, 1.5};
  const std::vector<int32_t> tri = {0, 1, 2};
  const int H = 6, W = 7;
  const auto p = params(3, 1, H, W);
  std::vector<double> rast(H * W * 4), g(H * W * 4);
  raster::rasterize<double>(p, pos.data(), tri.data(), rast.data());
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& v : g) v = u(rng);
  std::vector<double> d_pos(12, 0.0);
  raster::resolve_backward<double>(p, pos.data(), tri.data(), rast.data(), g.data(), d_pos.data());
  auto loss = [&](const std::vector<double>& q) {
    std::vector<double> r(H * W * 4);
    raster::resolve<double>(p, q.data(), tri.data(), rast.data(), r.data());  // ids of the unperturbed rast
    double s = 0.0;
    for (int i = 0; i < H * W; ++i)
      for (int c = 0; c < 3; ++c) s += g[i * 4 + c] * r[i * 4 + c];
    return s;
  };
  int fails = 0;
  const double h = 1e-6;
  for (int k = 0; k < 12; ++k) {
    auto qp = pos, qm = pos;
    qp[k] += h;
    qm[k] -= h;
    const double fd = (loss(qp) - loss(qm)) / (2 * h);
    fails += csdkit_tests::expect_near(d_pos[k], fd, 1e-5 * (1 + std::fabs(fd)), "d loss / d pos");
  }
  return fails;
}

CSDKIT_TEST(raster_interpolate_and_texture) {
  // Interpolating vertex uv and sampling a texture at texel centres reproduces the texels.
  const std::vector<float> pos = {-1, -1, 0, 1, 3, -1, 0, 1, -1, 3, 0, 1};  // covers the whole image
  const std::vector<int32_t> tri = {0, 1, 2};
  const int H = 4, W = 4;
  std::vector<float> rast(H * W * 4);
  raster::rasterize<float>(params(3, 1, H, W), pos.data(), tri.data(), rast.data());
  // uv = NDC mapped to [0, 1]: pixel centres land on texel centres of a 4x4 texture.
  const std::vector<float> attr = {0, 0, 2, 0, 0, 2};
  raster::InterpolateParams ip;
  ip.n_vertices = 3;
  ip.n_channels = 2;
  ip.n_triangles = 1;
  ip.height = H;
  ip.width = W;
  std::vector<float> uv(H * W * 2);
  raster::interpolate_forward<float>(ip, attr.data(), rast.data(), tri.data(), uv.data());
  std::vector<float> tex(16);
  for (int i = 0; i < 16; ++i) tex[i] = float(i);
  raster::TextureParams tp;
  tp.n_channels = 1;
  tp.height = H;
  tp.width = W;
  tp.level_height[0] = tp.level_width[0] = 4;
  const float* levels[1] = {tex.data()};
  std::vector<float> out(H * W);
  raster::texture_forward<float>(tp, levels, uv.data(), nullptr, nullptr, out.data());
  int fails = 0;
  for (int i = 0; i < H * W; ++i) fails += csdkit_tests::expect_near(out[i], tex[i], 1e-4, "texel value");
  return fails;
}

CSDKIT_TEST(raster_antialias_gives_the_covered_fraction_of_a_straight_edge) {
  // A square over the left part of an 8x8 image whose right edge is at screen X = 4.3: pixel column 4
  // (box [4, 5]) is 0.3 covered, everything else is untouched; moving the edge right raises column 4.
  const int H = 8, W = 8;
  const double xe = 4.3 / W * 2 - 1;
  const std::vector<double> pos = {-1.5, -1.5, 0, 1, xe, -1.5, 0, 1, xe, 1.5, 0, 1, -1.5, 1.5, 0, 1};
  const std::vector<int32_t> tri = {0, 1, 2, 0, 2, 3};
  const std::vector<int32_t> topology = {-1, -1, 1, 0, -1, -1};  // the diagonal (0, 2) is shared
  raster::Params rp;
  rp.n_vertices = 4, rp.n_triangles = 2, rp.height = H, rp.width = W;
  std::vector<double> rast(H * W * 4), color(H * W), out(H * W), weight(H * W);
  raster::rasterize<double>(rp, pos.data(), tri.data(), rast.data());
  for (int i = 0; i < H * W; ++i) color[i] = rast[i * 4 + 3] > 0 ? 1.0 : 0.0;
  raster::AntialiasParams p;
  p.n_vertices = 4, p.n_channels = 1, p.n_triangles = 2, p.height = H, p.width = W;
  raster::antialias_forward<double>(p, color.data(), rast.data(), pos.data(), tri.data(), topology.data(),
                                    out.data(), weight.data());
  int fails = 0;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const double want = x < 4 ? 1.0 : (x == 4 ? 0.3 : 0.0);
      fails += csdkit_tests::expect_near(out[y * W + x], want, 1e-9, "antialiased coverage");
    }
  std::vector<double> d_out(H * W, 1.0), d_color(H * W), d_pos(16, 0.0);
  raster::antialias_backward<double>(p, color.data(), rast.data(), pos.data(), tri.data(), topology.data(),
                                     out.data(), weight.data(), d_out.data(), d_color.data(), d_pos.data());
  // d(sum out)/d(x) of the two right vertices: 8 rows x dX/dx (= W / 2) = 32 in total.
  fails += csdkit_tests::expect_near(d_pos[4 * 1 + 0] + d_pos[4 * 2 + 0], 8.0 * W / 2, 1e-9, "edge gradient");
  fails += csdkit_tests::expect_near(d_pos[0], 0.0, 1e-12, "left vertices get no gradient");
  return fails;
}

CSDKIT_TEST(raster_bad_params_throw) {
  int fails = 0;
  std::vector<float> rast(4);
  try {
    raster::rasterize<float>(params(0, 0, 0, 1), nullptr, nullptr, rast.data());
    ++fails;
  } catch (const std::invalid_argument&) {
  }
  raster::TextureParams tp;
  tp.n_channels = 1;
  tp.height = tp.width = 1;
  tp.n_levels = 0;
  try {
    raster::check_texture_params(tp, "test");
    ++fails;
  } catch (const std::invalid_argument&) {
  }
  return fails;
}
