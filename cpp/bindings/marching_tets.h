// Binding adapters for marching tetrahedra (csdkit/marching_tets.h): pointer casts, dtype dispatch
// (float32/float64 positions and sdf, int32/int64 tets) and GIL release. Shapes, dtypes and devices
// were checked by csdkit.ops.marching_tetrahedra (Python), which also allocates between the passes.
#pragma once

#include <string>

#include "common.h"
#include "csdkit/marching_tets.h"

namespace csdkit_bind {

// All pointers of one call; unused ones are 0.
struct MarchingTetsBuffers {
  int64_t n_vertices = 0, n_tets = 0;
  uintptr_t vertices = 0, tets = 0, sdf = 0, tet_triangles = 0;
  int64_t n_active = 0;
  uintptr_t active = 0, tri_offset = 0;
  int table_bits = 0;
  uintptr_t table_keys = 0, table_owner = 0, slot_entry = 0, slot_owner = 0, owner_rank = 0;
  int64_t n_out_vertices = 0;
  uintptr_t out_vertices = 0, out_edges = 0, out_faces = 0;
};

template <typename T, typename I>
csdkit::marching_tets::Args<T, I> marching_tets_args(const MarchingTetsBuffers& b) {
  csdkit::marching_tets::Args<T, I> a;
  a.n_vertices = b.n_vertices;
  a.n_tets = b.n_tets;
  a.vertices = ptr<const T>(b.vertices);
  a.tets = ptr<const I>(b.tets);
  a.sdf = ptr<const T>(b.sdf);
  a.tet_triangles = ptr<int64_t>(b.tet_triangles);
  a.n_active = b.n_active;
  a.active = ptr<const int64_t>(b.active);
  a.tri_offset = ptr<const int64_t>(b.tri_offset);
  a.table_bits = b.table_bits;
  a.table_keys = ptr<int64_t>(b.table_keys);
  a.table_owner = ptr<int64_t>(b.table_owner);
  a.slot_entry = ptr<int64_t>(b.slot_entry);
  a.slot_owner = ptr<int64_t>(b.slot_owner);
  a.owner_rank = ptr<const int64_t>(b.owner_rank);
  a.n_out_vertices = b.n_out_vertices;
  a.out_vertices = ptr<T>(b.out_vertices);
  a.out_edges = ptr<int64_t>(b.out_edges);
  a.out_faces = ptr<int64_t>(b.out_faces);
  return a;
}

// pass: "classify", "insert_edges", "mark_owners" or "emit".
inline void marching_tets_pass(const std::string& pass, const MarchingTetsBuffers& b, const std::string& dtype,
                               const std::string& index_dtype, int device, uintptr_t stream) {
  if (pass != "classify" && pass != "insert_edges" && pass != "mark_owners" && pass != "emit")
    throw std::invalid_argument("marching_tets(): unknown pass " + pass);
  if (index_dtype != "int32" && index_dtype != "int64")
    throw std::invalid_argument("marching_tets(): tets must be int32 or int64, got " + index_dtype);
  py::gil_scoped_release nogil;
  dispatch_float("marching_tets", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto run = [&](auto itag) {
      using I = decltype(itag);
      const auto a = marching_tets_args<T, I>(b);
      const auto dev = device_of(device, stream);
      namespace mt = csdkit::marching_tets;
      if (pass == "classify")
        mt::classify<T, I>(a, dev);
      else if (pass == "insert_edges")
        mt::insert_edges<T, I>(a, dev);
      else if (pass == "mark_owners")
        mt::mark_owners<T, I>(a, dev);
      else
        mt::emit<T, I>(a, dev);
    };
    if (index_dtype == "int32")
      run(int32_t{});
    else
      run(int64_t{});
  });
}

inline void bind_marching_tets_types(py::module_& m) {
  py::class_<MarchingTetsBuffers>(m, "MarchingTetsBuffers")
      .def(py::init<>())
      .def_readwrite("n_vertices", &MarchingTetsBuffers::n_vertices)
      .def_readwrite("n_tets", &MarchingTetsBuffers::n_tets)
      .def_readwrite("vertices", &MarchingTetsBuffers::vertices)
      .def_readwrite("tets", &MarchingTetsBuffers::tets)
      .def_readwrite("sdf", &MarchingTetsBuffers::sdf)
      .def_readwrite("tet_triangles", &MarchingTetsBuffers::tet_triangles)
      .def_readwrite("n_active", &MarchingTetsBuffers::n_active)
      .def_readwrite("active", &MarchingTetsBuffers::active)
      .def_readwrite("tri_offset", &MarchingTetsBuffers::tri_offset)
      .def_readwrite("table_bits", &MarchingTetsBuffers::table_bits)
      .def_readwrite("table_keys", &MarchingTetsBuffers::table_keys)
      .def_readwrite("table_owner", &MarchingTetsBuffers::table_owner)
      .def_readwrite("slot_entry", &MarchingTetsBuffers::slot_entry)
      .def_readwrite("slot_owner", &MarchingTetsBuffers::slot_owner)
      .def_readwrite("owner_rank", &MarchingTetsBuffers::owner_rank)
      .def_readwrite("n_out_vertices", &MarchingTetsBuffers::n_out_vertices)
      .def_readwrite("out_vertices", &MarchingTetsBuffers::out_vertices)
      .def_readwrite("out_edges", &MarchingTetsBuffers::out_edges)
      .def_readwrite("out_faces", &MarchingTetsBuffers::out_faces);
  m.def("marching_tets_table_bits", &csdkit::marching_tets::table_bits_for, py::arg("n_active"));
}

}  // namespace csdkit_bind
