// Marching tetrahedra: argument checks, dispatch and the CPU kernels (math in csdkit/marching_tets.h).
// The edge table is filled by one ordered pass over the slots on the CPU, so each edge's first
// insertion is its smallest slot (the owner the CUDA path finds with atomicMin).
#include <limits>
#include <string>

#include "csdkit/marching_tets.h"
#include "csdkit/parallel.h"

namespace csdkit {
namespace marching_tets {

namespace {

template <typename T, typename I>
void check_inputs(const Args<T, I>& a, const char* fn) {
  check_arg(a.n_vertices >= 0 && a.n_tets >= 0, fn, "n_vertices and n_tets must be >= 0");
  check_arg(a.n_tets == 0 || (a.vertices && a.tets && a.sdf), fn, "vertices, tets and sdf must not be null");
  check_arg(a.n_vertices < (int64_t(1) << 31), fn,
            "n_vertices must be < 2^31 (edge keys a * V + b are 64-bit), got " + std::to_string(a.n_vertices));
}

template <typename T, typename I>
void check_active(const Args<T, I>& a, const char* fn) {
  check_inputs(a, fn);
  check_arg(a.n_active >= 0 && a.n_active <= a.n_tets, fn, "n_active must be in [0, n_tets]");
  check_arg(a.n_active == 0 || (a.active && a.slot_entry), fn, "active and slot_entry must not be null");
  check_arg(a.n_active == 0 || (a.table_keys && a.table_owner), fn, "the edge table must not be null");
  check_arg(a.table_bits >= 4 && a.table_bits <= 62 && (int64_t(1) << a.table_bits) >= 8 * a.n_active, fn,
            "table_bits must give a capacity >= 8 * n_active (use table_bits_for), got " +
                std::to_string(a.table_bits));
}

}  // namespace

template <typename T, typename I>
void classify_cpu(const Args<T, I>& a) {
  // Vertex ids are checked here (fused with the pass) before they index sdf.
  parallel_for(a.n_tets, 4096, [&](int64_t begin, int64_t end) {
    bool ok = true;
    for (int64_t i = 4 * begin; i < 4 * end; ++i) ok &= a.tets[i] >= 0 && int64_t(a.tets[i]) < a.n_vertices;
    check_arg(ok, "marching_tets::classify", "tets hold vertex ids outside [0, n_vertices)");
    for (int64_t t = begin; t < end; ++t) a.tet_triangles[t] = num_triangles(case_of(a, t));
  });
}

template <typename T, typename I>
void insert_edges_cpu(const Args<T, I>& a) {
  const uint64_t mask = (uint64_t(1) << a.table_bits) - 1;
  for (int64_t i = 0; i < a.n_active; ++i) {
    const int64_t t = a.active[i];
    const int c = case_of(a, t);
    for (int e = 0; e < 6; ++e) {
      const int64_t s = 6 * i + e;
      if (!edge_crosses(c, e)) {
        a.slot_entry[s] = -1;
        continue;
      }
      int64_t lo, hi;
      const int64_t key = edge_key(a, t, e, &lo, &hi);
      uint64_t h = edge_hash(key, a.table_bits);
      while (a.table_keys[h] != key && a.table_keys[h] != -1) h = (h + 1) & mask;
      if (a.table_keys[h] == -1) {
        a.table_keys[h] = key;
        a.table_owner[h] = s;
      }
      a.slot_entry[s] = int64_t(h);
    }
  }
}

template <typename T, typename I>
void mark_owners_cpu(const Args<T, I>& a) {
  parallel_for(6 * a.n_active, 8192, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) mark_owner_slot(a, s);
  });
}

template <typename T, typename I>
void emit_cpu(const Args<T, I>& a) {
  parallel_for(a.n_active, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) emit_tet(a, i);
  });
}

template <typename T, typename I>
void classify(const Args<T, I>& a, Device dev) {
  const char* fn = "marching_tets::classify";
  check_inputs(a, fn);
  check_arg(a.n_tets == 0 || a.tet_triangles, fn, "tet_triangles must not be null");
  if (a.n_tets == 0) return;
  if (dev.is_cuda())
    classify_cuda<T, I>(a, dev);
  else
    classify_cpu<T, I>(a);
}

template <typename T, typename I>
void insert_edges(const Args<T, I>& a, Device dev) {
  check_active(a, "marching_tets::insert_edges");
  if (a.n_active == 0) return;
  if (dev.is_cuda())
    insert_edges_cuda<T, I>(a, dev);
  else
    insert_edges_cpu<T, I>(a);
}

template <typename T, typename I>
void mark_owners(const Args<T, I>& a, Device dev) {
  const char* fn = "marching_tets::mark_owners";
  check_active(a, fn);
  check_arg(a.n_active == 0 || a.slot_owner, fn, "slot_owner must not be null");
  if (a.n_active == 0) return;
  if (dev.is_cuda())
    mark_owners_cuda<T, I>(a, dev);
  else
    mark_owners_cpu<T, I>(a);
}

template <typename T, typename I>
void emit(const Args<T, I>& a, Device dev) {
  const char* fn = "marching_tets::emit";
  check_active(a, fn);
  check_arg(a.n_active == 0 || (a.tri_offset && a.owner_rank && a.out_faces), fn,
            "tri_offset, owner_rank and out_faces must not be null");
  check_arg(a.n_out_vertices == 0 || (a.out_vertices && a.out_edges), fn,
            "out_vertices and out_edges must not be null");
  if (a.n_active == 0) return;
  if (dev.is_cuda())
    emit_cuda<T, I>(a, dev);
  else
    emit_cpu<T, I>(a);
}

template <typename T, typename I>
HostMesh<T> extract_host(int64_t n_vertices, const T* vertices, int64_t n_tets, const I* tets, const T* sdf) {
  const char* fn = "marching_tets::extract_host";
  Args<T, I> a;
  a.n_vertices = n_vertices;
  a.n_tets = n_tets;
  a.vertices = vertices;
  a.tets = tets;
  a.sdf = sdf;
  check_inputs(a, fn);
  for (int64_t i = 0; i < 4 * n_tets; ++i)
    check_arg(tets[i] >= 0 && int64_t(tets[i]) < n_vertices, fn, "tets hold a vertex id out of range");
  HostMesh<T> out;
  std::vector<int64_t> tet_triangles(n_tets);
  a.tet_triangles = tet_triangles.data();
  classify<T, I>(a);
  std::vector<int64_t> active, tri_offset;
  int64_t n_faces = 0;
  for (int64_t t = 0; t < n_tets; ++t) {
    if (tet_triangles[t] == 0) continue;
    active.push_back(t);
    tri_offset.push_back(n_faces);
    n_faces += tet_triangles[t];
  }
  a.n_active = int64_t(active.size());
  if (a.n_active == 0) return out;
  a.active = active.data();
  a.tri_offset = tri_offset.data();
  a.table_bits = table_bits_for(a.n_active);
  std::vector<int64_t> keys(size_t(1) << a.table_bits, -1);
  std::vector<int64_t> owner(keys.size(), std::numeric_limits<int64_t>::max());
  std::vector<int64_t> slot_entry(6 * a.n_active), slot_owner(6 * a.n_active);
  a.table_keys = keys.data();
  a.table_owner = owner.data();
  a.slot_entry = slot_entry.data();
  a.slot_owner = slot_owner.data();
  insert_edges<T, I>(a);
  mark_owners<T, I>(a);
  std::vector<int64_t> rank(slot_owner.size());
  int64_t n_out = 0;
  for (size_t s = 0; s < rank.size(); ++s) rank[s] = (n_out += slot_owner[s]);
  a.owner_rank = rank.data();
  a.n_out_vertices = n_out;
  out.vertices.resize(3 * n_out);
  out.edges.resize(2 * n_out);
  out.faces.resize(3 * n_faces);
  a.out_vertices = out.vertices.data();
  a.out_edges = out.edges.data();
  a.out_faces = out.faces.data();
  emit<T, I>(a);
  return out;
}

#define CSDKIT_INSTANTIATE(T, I)                                 \
  template HostMesh<T> extract_host<T, I>(int64_t, const T*, int64_t, const I*, const T*); \
  template void classify<T, I>(const Args<T, I>&, Device);       \
  template void insert_edges<T, I>(const Args<T, I>&, Device);   \
  template void mark_owners<T, I>(const Args<T, I>&, Device);    \
  template void emit<T, I>(const Args<T, I>&, Device);           \
  template void classify_cpu<T, I>(const Args<T, I>&);           \
  template void insert_edges_cpu<T, I>(const Args<T, I>&);       \
  template void mark_owners_cpu<T, I>(const Args<T, I>&);        \
  template void emit_cpu<T, I>(const Args<T, I>&);
CSDKIT_INSTANTIATE(float, int32_t)
CSDKIT_INSTANTIATE(float, int64_t)
CSDKIT_INSTANTIATE(double, int32_t)
CSDKIT_INSTANTIATE(double, int64_t)
#undef CSDKIT_INSTANTIATE

#ifndef CSDKIT_WITH_CUDA
#define CSDKIT_NO_CUDA(name)                                                                        \
  template <typename T, typename I>                                                                 \
  void name##_cuda(const Args<T, I>&, Device) {                                                     \
    throw std::runtime_error("marching_tets::" #name "(): csdkit was not compiled with CUDA support"); \
  }                                                                                                 \
  template void name##_cuda<float, int32_t>(const Args<float, int32_t>&, Device);                   \
  template void name##_cuda<float, int64_t>(const Args<float, int64_t>&, Device);                   \
  template void name##_cuda<double, int32_t>(const Args<double, int32_t>&, Device);                 \
  template void name##_cuda<double, int64_t>(const Args<double, int64_t>&, Device);
CSDKIT_NO_CUDA(classify)
CSDKIT_NO_CUDA(insert_edges)
CSDKIT_NO_CUDA(mark_owners)
CSDKIT_NO_CUDA(emit)
#undef CSDKIT_NO_CUDA
#endif

}  // namespace marching_tets
}  // namespace csdkit
