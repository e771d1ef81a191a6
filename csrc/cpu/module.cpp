// clarinet._C: the CPU extension. It carries the build's own description so
// that benchmarks can record how the native code was compiled; the CPU kernels
// of later ops (incremental sampling) are registered here too.
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

// csrc/cpu/wavenet_sampler.cpp
void register_wavenet_sampler(py::module_& m);
// csrc/cpu/roofline.cpp
void register_roofline(py::module_& m);

namespace {

py::dict build_info() {
  py::dict info;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = std::string("unknown");
#endif
#if defined(__AVX2__)
  info["avx2"] = true;
#else
  info["avx2"] = false;
#endif
#if defined(__FMA__)
  info["fma"] = true;
#else
  info["fma"] = false;
#endif
#if defined(_OPENMP)
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["cplusplus"] = static_cast<long>(__cplusplus);
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "clarinet CPU extension";
  m.def("build_info", &build_info, "How this extension was compiled (compiler, vector ISA flags, OpenMP).");
  register_wavenet_sampler(m);
  register_roofline(m);
}
