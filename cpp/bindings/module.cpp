// The pybind11 module csdkit._C: one table of m.def lines. Each kernel family keeps its small
// adapters (pointer casts, dtype dispatch, GIL release) in a header next to this file.
#include <pybind11/pybind11.h>

#include "common.h"
#include "hashgrid.h"

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
}
