// The pybind11 module csdkit._C: one table of m.def lines. Each kernel family keeps its small
// adapters (pointer casts, dtype dispatch, GIL release) in a header next to this file.
#include <pybind11/pybind11.h>

#include "common.h"
#include "hashgrid.h"
#include "marching_tets.h"
#include "raster.h"
#include "volrend.h"

namespace py = pybind11;
using namespace csdkit_bind;

PYBIND11_MODULE(_C, m) {
  m.doc() = "csdkit kernel core (CPU and, when compiled in, CUDA)";

  // ---- library information
  m.def("version", &csdkit::version);
  m.def("compiled_with_cuda", &csdkit::compiled_with_cuda);
  m.def("cuda_architectures", &csdkit::cuda_architectures);
  m.def("cuda_device_count", &csdkit::cuda_device_count);
  m.def("num_threads", &csdkit::num_threads);
  m.def("set_num_threads", &csdkit::set_num_threads, py::arg("n"));

  // ---- hash-grid encoding
  bind_hashgrid_types(m);
  m.def("hashgrid_layout", &hashgrid_layout, py::arg("options"));
  m.def("hashgrid_forward", &hashgrid_forward, py::arg("options"), py::arg("n"), py::arg("x"), py::arg("params"),
        py::arg("out"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("hashgrid_backward", &hashgrid_backward, py::arg("options"), py::arg("n"), py::arg("x"), py::arg("params"),
        py::arg("d_out"), py::arg("d_params"), py::arg("d_x"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"), py::arg("accumulate") = true);

  // ---- rasterizer: rasterize, resolve, interpolate, antialias, texture (cpp/bindings/raster.h)
  m.def("raster_forward", &raster_forward, py::arg("batch"), py::arg("n_vertices"), py::arg("n_triangles"),
        py::arg("height"), py::arg("width"), py::arg("pos"), py::arg("tri"), py::arg("rast"), py::arg("dtype"),
        py::arg("device"), py::arg("stream"));
  m.def("raster_resolve", &raster_resolve, py::arg("batch"), py::arg("n_vertices"), py::arg("n_triangles"),
        py::arg("height"), py::arg("width"), py::arg("pos"), py::arg("tri"), py::arg("rast"), py::arg("out"),
        py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("raster_resolve_backward", &raster_resolve_backward, py::arg("batch"), py::arg("n_vertices"),
        py::arg("n_triangles"), py::arg("height"), py::arg("width"), py::arg("pos"), py::arg("tri"),
        py::arg("rast"), py::arg("d_rast"), py::arg("d_pos"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"));
  m.def("raster_bary_derivatives", &raster_bary_derivatives, py::arg("batch"), py::arg("n_vertices"),
        py::arg("n_triangles"), py::arg("height"), py::arg("width"), py::arg("pos"), py::arg("tri"),
        py::arg("rast"), py::arg("rast_db"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("raster_interpolate_forward", &raster_interpolate_forward, py::arg("batch"), py::arg("attr_batch"),
        py::arg("n_vertices"), py::arg("n_channels"), py::arg("n_triangles"), py::arg("height"), py::arg("width"),
        py::arg("attr"), py::arg("rast"), py::arg("tri"), py::arg("out"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"));
  m.def("raster_interpolate_backward", &raster_interpolate_backward, py::arg("batch"), py::arg("attr_batch"),
        py::arg("n_vertices"), py::arg("n_channels"), py::arg("n_triangles"), py::arg("height"), py::arg("width"),
        py::arg("attr"), py::arg("rast"), py::arg("tri"), py::arg("d_out"), py::arg("d_attr"), py::arg("d_rast"),
        py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("raster_antialias_forward", &raster_antialias_forward, py::arg("batch"), py::arg("pos_batch"),
        py::arg("n_vertices"), py::arg("n_channels"), py::arg("n_triangles"), py::arg("height"), py::arg("width"),
        py::arg("color"), py::arg("rast"), py::arg("pos"), py::arg("tri"), py::arg("topology"), py::arg("out"),
        py::arg("weight"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("raster_antialias_backward", &raster_antialias_backward, py::arg("batch"), py::arg("pos_batch"),
        py::arg("n_vertices"), py::arg("n_channels"), py::arg("n_triangles"), py::arg("height"), py::arg("width"),
        py::arg("color"), py::arg("rast"), py::arg("pos"), py::arg("tri"), py::arg("topology"), py::arg("out"),
        py::arg("weight"), py::arg("d_out"), py::arg("d_color"), py::arg("d_pos"), py::arg("dtype"),
        py::arg("device"), py::arg("stream"));
  m.def("raster_texture_forward", &raster_texture_forward, py::arg("batch"), py::arg("tex_batch"),
        py::arg("n_channels"), py::arg("height"), py::arg("width"), py::arg("level_heights"),
        py::arg("level_widths"), py::arg("levels"), py::arg("uv"), py::arg("uv_da"), py::arg("bias"),
        py::arg("out"), py::arg("filter"), py::arg("boundary"), py::arg("fd_derivatives"), py::arg("dtype"),
        py::arg("device"), py::arg("stream"));
  m.def("raster_texture_backward", &raster_texture_backward, py::arg("batch"), py::arg("tex_batch"),
        py::arg("n_channels"), py::arg("height"), py::arg("width"), py::arg("level_heights"),
        py::arg("level_widths"), py::arg("levels"), py::arg("uv"), py::arg("uv_da"), py::arg("bias"),
        py::arg("d_out"), py::arg("d_levels"), py::arg("d_uv"), py::arg("filter"), py::arg("boundary"),
        py::arg("fd_derivatives"), py::arg("dtype"), py::arg("device"), py::arg("stream"));

  // ---- volume rendering (ray/box, marching, compositing)
  m.def("volrend_ray_aabb", &volrend_ray_aabb, py::arg("n"), py::arg("rays_o"), py::arg("rays_d"), py::arg("aabb"),
        py::arg("near_plane"), py::arg("far_plane"), py::arg("t_near"), py::arg("t_far"), py::arg("hit"),
        py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("volrend_march_count", &volrend_march_count, py::arg("n"), py::arg("rays_o"), py::arg("rays_d"),
        py::arg("jitter"), py::arg("grid"), py::arg("res"), py::arg("aabbs"), py::arg("step"), py::arg("cone"),
        py::arg("near_plane"), py::arg("far_plane"), py::arg("counts"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"));
  m.def("volrend_march_fill", &volrend_march_fill, py::arg("n"), py::arg("rays_o"), py::arg("rays_d"),
        py::arg("jitter"), py::arg("grid"), py::arg("res"), py::arg("aabbs"), py::arg("step"), py::arg("cone"),
        py::arg("near_plane"), py::arg("far_plane"), py::arg("packed_info"), py::arg("ray_indices"),
        py::arg("t_starts"), py::arg("t_ends"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("volrend_weights_forward", &volrend_weights_forward, py::arg("n_rays"), py::arg("n_samples"),
        py::arg("packed_info"), py::arg("t_starts"), py::arg("t_ends"), py::arg("input"), py::arg("mode"),
        py::arg("eps"), py::arg("weights"), py::arg("transmittance"), py::arg("alphas"), py::arg("dtype"),
        py::arg("device"), py::arg("stream"));
  m.def("volrend_weights_backward", &volrend_weights_backward, py::arg("n_rays"), py::arg("n_samples"),
        py::arg("packed_info"), py::arg("t_starts"), py::arg("t_ends"), py::arg("mode"), py::arg("eps"),
        py::arg("transmittance"), py::arg("alphas"), py::arg("d_weights"), py::arg("d_transmittance"),
        py::arg("d_alphas"), py::arg("d_input"), py::arg("d_tau"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"));
  m.def("volrend_check_packed", &volrend_check_packed, py::arg("packed_info"), py::arg("n_rays"),
        py::arg("n_samples"));
  m.def("volrend_accumulate_forward", &volrend_accumulate_forward, py::arg("n_rays"), py::arg("n_samples"),
        py::arg("channels"), py::arg("packed_info"), py::arg("ray_indices"), py::arg("weights"), py::arg("values"),
        py::arg("out"), py::arg("dtype"), py::arg("device"), py::arg("stream"));
  m.def("volrend_accumulate_backward", &volrend_accumulate_backward, py::arg("n_rays"), py::arg("n_samples"),
        py::arg("channels"), py::arg("packed_info"), py::arg("ray_indices"), py::arg("weights"), py::arg("values"),
        py::arg("d_out"), py::arg("d_weights"), py::arg("d_values"), py::arg("dtype"), py::arg("device"),
        py::arg("stream"));

  // ---- marching tetrahedra (cpp/bindings/marching_tets.h): classify, insert_edges, mark_owners, emit
  bind_marching_tets_types(m);
  m.def("marching_tets_pass", &marching_tets_pass, py::arg("pass_name"), py::arg("buffers"), py::arg("dtype"),
        py::arg("index_dtype"), py::arg("device"), py::arg("stream"));
}
