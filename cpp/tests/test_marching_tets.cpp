// Marching tetrahedra: the CPU kernel (all passes, via extract_host) against the per-element
// functions evaluated tet by tet, the case table's orientation, and watertightness of a sphere.
#include <cmath>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "csdkit/marching_tets.h"
#include "tests.h"

namespace mt = csdkit::marching_tets;

namespace {

// The Kuhn grid of tet_grid(): (r + 1)^3 vertices in [-1, 1]^3, 6 r^3 positively oriented tets.
void kuhn_grid(int r, std::vector<double>* verts, std::vector<int32_t>* tets) {
  const int n = r + 1;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < n; ++k) {
        verts->push_back(-1.0 + 2.0 * i / r);
        verts->push_back(-1.0 + 2.0 * j / r);
        verts->push_back(-1.0 + 2.0 * k / r);
      }
  const int paths[6][4] = {{0, 1, 3, 7}, {0, 1, 7, 5}, {0, 2, 7, 3}, {0, 2, 6, 7}, {0, 4, 5, 7}, {0, 4, 7, 6}};
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < r; ++j)
      for (int k = 0; k < r; ++k)
        for (const auto& p : paths)
          for (int c : p) tets->push_back(((i + (c & 1)) * n + j + ((c >> 1) & 1)) * n + k + ((c >> 2) & 1));
}

double tet_det(const double* v, const int32_t* t) {
  double e[3][3];
  for (int a = 0; a < 3; ++a)
    for (int d = 0; d < 3; ++d) e[a][d] = v[3 * t[a + 1] + d] - v[3 * t[0] + d];
  return e[0][0] * (e[1][1] * e[2][2] - e[1][2] * e[2][1]) - e[0][1] * (e[1][0] * e[2][2] - e[1][2] * e[2][0]) +
         e[0][2] * (e[1][0] * e[2][1] - e[1][1] * e[2][0]);
}

}  // namespace

CSDKIT_TEST(marching_tets_table_cases_are_outward) {
  int failed = 0;
  const double x[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
  const int32_t tet[4] = {0, 1, 2, 3};
  for (int c = 0; c < 16; ++c) {
    double sdf[4];
    for (int i = 0; i < 4; ++i) sdf[i] = ((c >> i) & 1) ? -0.5 - 0.1 * i : 0.3 + 0.2 * i;
    failed += mt::tet_case<double>(sdf[0], sdf[1], sdf[2], sdf[3]) != c;
    const auto m = mt::extract_host<double, int32_t>(4, x, 1, tet, sdf);
    failed += int(m.faces.size()) != 3 * mt::num_triangles(c);
    double cin[3] = {0, 0, 0}, cout[3] = {0, 0, 0};
    int nin = 0;
    for (int i = 0; i < 4; ++i) {
      const bool in = (c >> i) & 1;
      nin += in;
      for (int d = 0; d < 3; ++d) (in ? cin : cout)[d] += x[3 * i + d];
    }
    for (size_t f = 0; f < m.faces.size() / 3; ++f) {
      const double* p[3];
      for (int k = 0; k < 3; ++k) p[k] = &m.vertices[3 * m.faces[3 * f + k]];
      double u[3], v[3];
      for (int d = 0; d < 3; ++d) {
        u[d] = p[1][d] - p[0][d];
        v[d] = p[2][d] - p[0][d];
      }
      const double n[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
      double dot = 0;
      for (int d = 0; d < 3; ++d) dot += n[d] * (cout[d] / (4 - nin) - cin[d] / nin);
      if (!(dot > 0)) {
        std::printf("  case %d triangle %zu is not outward (dot %g)\n", c, f, dot);
        ++failed;
      }
    }
  }
  return failed;
}

CSDKIT_TEST(marching_tets_kernel_matches_per_tet_math) {
  std::vector<double> verts;
  std::vector<int32_t> tets;
  const int r = 10;
  kuhn_grid(r, &verts, &tets);
  const int64_t nv = int64_t(verts.size() / 3), nt = int64_t(tets.size() / 4);
  int failed = 0;
  for (int64_t t = 0; t < nt; ++t) failed += !(tet_det(verts.data(), &tets[4 * t]) > 0);
  std::vector<double> sdf(nv);
  for (int64_t v = 0; v < nv; ++v) {  // a wobbly sphere, closed inside the grid
    const double* p = &verts[3 * v];
    sdf[v] = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) - 0.6 - 0.1 * std::sin(5 * p[0]) * p[1];
  }
  const auto m = mt::extract_host<double, int32_t>(nv, verts.data(), nt, tets.data(), sdf.data());
  const int64_t n_out = int64_t(m.edges.size() / 2), n_faces = int64_t(m.faces.size() / 3);
  failed += n_faces == 0;
  // Each output vertex is the crossing of its edge.
  for (int64_t i = 0; i < n_out; ++i) {
    const int64_t a = m.edges[2 * i], b = m.edges[2 * i + 1];
    failed += !(a < b) || (sdf[a] < 0) == (sdf[b] < 0);
    const double w = sdf[a] / (sdf[a] - sdf[b]);
    for (int d = 0; d < 3; ++d)
      failed += csdkit_tests::expect_near(m.vertices[3 * i + d], verts[3 * a + d] + w * (verts[3 * b + d] -
                                          verts[3 * a + d]), 0.0, "crossing vertex");
  }
  // Faces in active-tet order match the table applied tet by tet.
  int64_t f = 0;
  for (int64_t t = 0; t < nt && !failed; ++t) {
    const int32_t* v = &tets[4 * t];
    const int c = mt::tet_case<double>(sdf[v[0]], sdf[v[1]], sdf[v[2]], sdf[v[3]]);
    for (int j = 0; j < mt::num_triangles(c); ++j, ++f)
      for (int k = 0; k < 3; ++k) {
        const int e = mt::triangle_edge(c, j, k);
        int64_t p = v[mt::edge_corner(e, 0)], q = v[mt::edge_corner(e, 1)];
        if (p > q) std::swap(p, q);
        const int64_t id = m.faces[3 * f + k];
        failed += m.edges[2 * id] != p || m.edges[2 * id + 1] != q;
      }
  }
  failed += f != n_faces;
  // Watertight and consistently oriented: every directed edge once, with its reverse.
  std::map<std::pair<int64_t, int64_t>, int> directed;
  for (int64_t i = 0; i < n_faces; ++i)
    for (int k = 0; k < 3; ++k) ++directed[{m.faces[3 * i + k], m.faces[3 * i + (k + 1) % 3]}];
  for (const auto& kv : directed)
    failed += kv.second != 1 || directed.count({kv.first.second, kv.first.first}) != 1;
  // Euler characteristic of a sphere.
  const int64_t chi = n_out - int64_t(directed.size()) / 2 + n_faces;
  failed += csdkit_tests::expect_near(double(chi), 2.0, 0.0, "Euler characteristic");
  return failed;
}
