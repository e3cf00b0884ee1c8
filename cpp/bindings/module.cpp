// The pybind11 module csdkit._C: one table of m.def lines. Each kernel family keeps its small
// adapters (pointer casts, dtype dispatch, GIL release) in a header next to this file.
#include <pybind11/pybind11.h>

#include "common.h"
#include "hashgrid.h"
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
        py::arg("stream"));

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
}
