// csdkit/marching_tets.h -- marching tetrahedra on an arbitrary tetrahedral mesh, with crossing
// edges deduplicated into an indexed, watertight triangle mesh. The pure-PyTorch twin (the
// specification) is python/csdkit/ops/reference/marching_tetrahedra.py.
//
// The rule:
//   * vertex v is inside when sdf[v] < 0 (so sdf == 0 counts as outside);
//   * tet t = (v0, v1, v2, v3) has case c = sum_i [sdf[v_i] < 0] << i (0..15); cases 0 and 15 emit
//     nothing, cases with one or three inside corners one triangle, two and two a quad (two triangles);
//   * local edges are e0 = (0,1), e1 = (0,2), e2 = (0,3), e3 = (1,2), e4 = (1,3), e5 = (2,3); a
//     triangle is three local edges, taken from kTriTable[c];
//   * every crossing edge (a, b), a < b as vertex ids, gives one output vertex at the zero of the
//     linear interpolation: w = sdf[a] / (sdf[a] - sdf[b]), p = x[a] + w * (x[b] - x[a]);
//   * output vertices are numbered by their first use: active tets (0 < c < 15) in tet order, local
//     edges in order within a tet; output triangles come in active-tet order, table order within.
//   * for a positively oriented tet (det[x1 - x0, x2 - x0, x3 - x0] > 0) the triangles are
//     counter-clockwise seen from outside (normals point from sdf < 0 to sdf >= 0).
//
// Passes (each a kernel over tets, active tets or slots; the caller allocates between them, like
// march_count / march_fill): classify -> (caller: active list, triangle offsets) -> insert_edges ->
// mark_owners -> (caller: inclusive cumsum of owners = vertex id + 1) -> emit. A slot is one
// (active tet, local edge) pair: slot = 6 * active_index + local_edge. An edge's owner is its
// smallest slot; the edge table is an open-addressing hash table of 64-bit keys a * V + b.
#pragma once

#include <cstdint>
#include <vector>

#include "csdkit/common.h"

namespace csdkit {
namespace marching_tets {

// Corner pairs of the six local edges.
CSDKIT_HD int edge_corner(int edge, int end) {
  // e0 (0,1) e1 (0,2) e2 (0,3) e3 (1,2) e4 (1,3) e5 (2,3)
  const int a = edge < 3 ? 0 : (edge < 5 ? 1 : 2);
  const int b = edge < 3 ? edge + 1 : (edge < 5 ? edge - 1 : 3);
  return end == 0 ? a : b;
}

// Triangles per case (0, 1 or 2).
CSDKIT_HD int num_triangles(int c) {
  // 0 1 1 2 1 2 2 1 1 2 2 1 2 1 1 0
  const int inside = (c & 1) + ((c >> 1) & 1) + ((c >> 2) & 1) + ((c >> 3) & 1);
  return inside == 0 || inside == 4 ? 0 : (inside == 2 ? 2 : 1);
}

// The case table: per case, six 3-bit local edges (two triangles of three corners, 7 = none),
// entry k at bits 3k..3k+2. Triangles are counter-clockwise seen from the outside corners, for a
// positively oriented tet. (A switch, not an array: the same code on host and device.)
CSDKIT_HD uint32_t packed_triangles(int c) {
  switch (c) {
    case 0: return 0777777u;  // -  (all outside)
    case 1: return 0777210u;  // 0, 1, 2, -1, -1, -1  ({0} inside)
    case 2: return 0777340u;  // 0, 4, 3, -1, -1, -1  ({1})
    case 3: return 0341421u;  // 1, 2, 4, 1, 4, 3  ({0, 1})
    case 4: return 0777531u;  // 1, 3, 5, -1, -1, -1  ({2})
    case 5: return 0530250u;  // 0, 5, 2, 0, 3, 5  ({0, 2})
    case 6: return 0150540u;  // 0, 4, 5, 0, 5, 1  ({1, 2})
    case 7: return 0777542u;  // 2, 4, 5, -1, -1, -1  ({0, 1, 2})
    case 8: return 0777452u;  // 2, 5, 4, -1, -1, -1  ({3})
    case 9: return 0450510u;  // 0, 1, 5, 0, 5, 4  ({0, 3})
    case 10: return 0520350u;  // 0, 5, 3, 0, 2, 5  ({1, 3})
    case 11: return 0777351u;  // 1, 5, 3, -1, -1, -1  ({0, 1, 3})
    case 12: return 0241431u;  // 1, 3, 4, 1, 4, 2  ({2, 3})
    case 13: return 0777430u;  // 0, 3, 4, -1, -1, -1  ({0, 2, 3})
    case 14: return 0777120u;  // 0, 2, 1, -1, -1, -1  ({1, 2, 3})
    case 15: return 0777777u;  // -  (all inside)
    default: return 0777777u;
  }
}

// Local edge of corner k (0..2) of triangle j (0..1) of case c; -1 when the triangle does not exist.
CSDKIT_HD int triangle_edge(int c, int j, int k) {
  const int e = int((packed_triangles(c) >> (3 * (3 * j + k))) & 7u);
  return e == 7 ? -1 : e;
}

// Case of a tet from its corners' sdf values.
template <typename T>
CSDKIT_HD int tet_case(T s0, T s1, T s2, T s3) {
  return int(s0 < T(0)) | (int(s1 < T(0)) << 1) | (int(s2 < T(0)) << 2) | (int(s3 < T(0)) << 3);
}

// Whether local edge e crosses the level set in case c.
CSDKIT_HD bool edge_crosses(int c, int e) {
  return ((c >> edge_corner(e, 0)) & 1) != ((c >> edge_corner(e, 1)) & 1);
}

// The zero of the linear interpolation along edge (a, b): weight of b. Needs sa and sb of
// different signs (one < 0, the other >= 0), so sa - sb != 0.
template <typename T>
CSDKIT_HD T crossing_weight(T sa, T sb) {
  return sa / (sa - sb);
}

// p = xa + w * (xb - xa), per coordinate.
template <typename T>
CSDKIT_HD void interpolate_point(const T* xa, const T* xb, T w, T* out) {
  for (int d = 0; d < 3; ++d) out[d] = xa[d] + w * (xb[d] - xa[d]);
}

// Hash of an edge key for a table of capacity 2^bits.
CSDKIT_HD uint64_t edge_hash(int64_t key, int bits) {
  return (uint64_t(key) * 0x9E3779B97F4A7C15ull) >> (64 - bits);
}

// ---- op -----------------------------------------------------------------------------------------
template <typename T, typename I>
struct Args {
  int64_t n_vertices = 0;
  int64_t n_tets = 0;
  const T* vertices = nullptr;  // [n_vertices, 3]
  const I* tets = nullptr;      // [n_tets, 4], ids in [0, n_vertices)
  const T* sdf = nullptr;       // [n_vertices]

  // classify: out
  int64_t* tet_triangles = nullptr;  // [n_tets] 0, 1 or 2 triangles per tet

  // the caller's compaction: active tets (tet_triangles > 0) and their first output triangle
  int64_t n_active = 0;
  const int64_t* active = nullptr;      // [n_active] tet ids, increasing
  const int64_t* tri_offset = nullptr;  // [n_active] exclusive cumulative sum of tet_triangles[active]

  // edge table (capacity 2^table_bits >= 2 * 4 * n_active), keys -1 and owners INT64_MAX initially
  int table_bits = 0;
  int64_t* table_keys = nullptr;    // [2^table_bits]
  int64_t* table_owner = nullptr;   // [2^table_bits] smallest slot of the edge
  int64_t* slot_entry = nullptr;    // [6 * n_active] out of insert_edges: table index, -1 = no crossing
  int64_t* slot_owner = nullptr;    // [6 * n_active] out of mark_owners: 1 where the slot owns its edge
  const int64_t* owner_rank = nullptr;  // [6 * n_active] inclusive cumsum of slot_owner (id + 1)

  // emit: out
  int64_t n_out_vertices = 0;
  T* out_vertices = nullptr;     // [n_out_vertices, 3]
  int64_t* out_edges = nullptr;  // [n_out_vertices, 2] (a, b), a < b
  int64_t* out_faces = nullptr;  // [sum of tet_triangles, 3]
};

template <typename T, typename I>
void classify(const Args<T, I>& args, Device dev = {});
template <typename T, typename I>
void insert_edges(const Args<T, I>& args, Device dev = {});
template <typename T, typename I>
void mark_owners(const Args<T, I>& args, Device dev = {});
template <typename T, typename I>
void emit(const Args<T, I>& args, Device dev = {});

// Table capacity exponent for n_active tets (>= 2 * 4 * n_active slots, at least 2^4).
inline int table_bits_for(int64_t n_active) {
  int bits = 4;
  while ((int64_t(1) << bits) < 8 * n_active) ++bits;
  return bits;
}

// All passes on host memory (CPU kernels), for C++ users: vertices [N, 3], edges [N, 2] (a < b) and
// faces [M, 3], flattened row-major, as the Python op returns them.
template <typename T>
struct HostMesh {
  std::vector<T> vertices;
  std::vector<int64_t> edges;
  std::vector<int64_t> faces;
};
template <typename T, typename I>
HostMesh<T> extract_host(int64_t n_vertices, const T* vertices, int64_t n_tets, const I* tets, const T* sdf);

template <typename T, typename I>
void classify_cpu(const Args<T, I>& args);
template <typename T, typename I>
void insert_edges_cpu(const Args<T, I>& args);
template <typename T, typename I>
void mark_owners_cpu(const Args<T, I>& args);
template <typename T, typename I>
void emit_cpu(const Args<T, I>& args);
template <typename T, typename I>
void classify_cuda(const Args<T, I>& args, Device dev);
template <typename T, typename I>
void insert_edges_cuda(const Args<T, I>& args, Device dev);
template <typename T, typename I>
void mark_owners_cuda(const Args<T, I>& args, Device dev);
template <typename T, typename I>
void emit_cuda(const Args<T, I>& args, Device dev);

// ---- per-element steps shared by the CPU and CUDA kernels -----------------------------------------

template <typename T, typename I>
CSDKIT_HD int case_of(const Args<T, I>& a, int64_t t) {
  const I* v = a.tets + 4 * t;
  return tet_case<T>(a.sdf[v[0]], a.sdf[v[1]], a.sdf[v[2]], a.sdf[v[3]]);
}

template <typename T, typename I>
CSDKIT_HD int64_t edge_key(const Args<T, I>& a, int64_t t, int e, int64_t* lo, int64_t* hi) {
  const I* v = a.tets + 4 * t;
  const int64_t p = int64_t(v[edge_corner(e, 0)]), q = int64_t(v[edge_corner(e, 1)]);
  *lo = p < q ? p : q;
  *hi = p < q ? q : p;
  return *lo * a.n_vertices + *hi;
}

// Table index holding `key` (which was inserted), found by linear probing.
template <typename T, typename I>
CSDKIT_HD int64_t find_entry(const Args<T, I>& a, int64_t key) {
  const uint64_t mask = (uint64_t(1) << a.table_bits) - 1;
  uint64_t h = edge_hash(key, a.table_bits);
  while (a.table_keys[h] != key) h = (h + 1) & mask;
  return int64_t(h);
}

// Slot owner flag (per slot).
template <typename T, typename I>
CSDKIT_HD void mark_owner_slot(const Args<T, I>& a, int64_t s) {
  const int64_t entry = a.slot_entry[s];
  a.slot_owner[s] = entry >= 0 && a.table_owner[entry] == s ? 1 : 0;
}

// Writes the vertices owned by active tet i and its triangles.
template <typename T, typename I>
CSDKIT_HD void emit_tet(const Args<T, I>& a, int64_t i) {
  const int64_t t = a.active[i];
  const int c = case_of(a, t);
  int64_t vid[6];
  for (int e = 0; e < 6; ++e) {
    const int64_t s = 6 * i + e;
    const int64_t entry = a.slot_entry[s];
    if (entry < 0) {
      vid[e] = -1;
      continue;
    }
    const int64_t owner = a.table_owner[entry];
    vid[e] = a.owner_rank[owner] - 1;
    if (owner == s) {
      int64_t lo, hi;
      edge_key(a, t, e, &lo, &hi);
      const T w = crossing_weight<T>(a.sdf[lo], a.sdf[hi]);
      interpolate_point<T>(a.vertices + 3 * lo, a.vertices + 3 * hi, w, a.out_vertices + 3 * vid[e]);
      a.out_edges[2 * vid[e]] = lo;
      a.out_edges[2 * vid[e] + 1] = hi;
    }
  }
  const int n = num_triangles(c);
  int64_t* f = a.out_faces + 3 * a.tri_offset[i];
  for (int j = 0; j < n; ++j)
    for (int k = 0; k < 3; ++k) f[3 * j + k] = vid[triangle_edge(c, j, k)];
}

}  // namespace marching_tets
}  // namespace csdkit
