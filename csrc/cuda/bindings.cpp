// clarinet._cuda: pybind11 bindings over raw device pointers (no torch C++ ABI).
//
// Python passes device addresses (tensor.data_ptr()), sizes, strides in elements, a dtype
// code (0 float32, 1 float16, 2 bfloat16), the device index and the stream handle
// (torch.cuda.current_stream(dev).cuda_stream). Importing this module makes no CUDA call.
// Argument errors raise ValueError (std::invalid_argument), CUDA errors RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <tuple>

#include "clarinet_cuda.h"

namespace py = pybind11;
namespace cc = clarinet_cuda;

namespace {

// A strided 2-D view as Python passes it: (address, stride_row, stride_col).
using ViewTuple = std::tuple<std::uintptr_t, std::int64_t, std::int64_t>;

cc::View2D view(const ViewTuple& t) {
  cc::View2D v;
  v.ptr = std::get<0>(t);
  v.stride_row = std::get<1>(t);
  v.stride_col = std::get<2>(t);
  return v;
}

cc::LaunchContext context(int dtype, int device, std::uintptr_t stream) {
  cc::LaunchContext c;
  c.dtype = dtype;
  c.device = device;
  c.stream = stream;
  return c;
}

using Strides3 = std::tuple<std::int64_t, std::int64_t, std::int64_t>;

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "clarinet CUDA kernels (launchers over raw device pointers; see clarinet/_cuda_ops.py for the torch-facing "
      "wrappers). Views are (address, stride_row, stride_col) tuples, strides in elements; dtype codes: 0 float32, "
      "1 float16, 2 bfloat16; reduction codes: 0 none, 1 sum, 2 mean.";

  m.attr("MAX_PARTIALS") = cc::kMaxPartials;
  m.attr("DTYPE_FLOAT32") = cc::kFloat32;
  m.attr("DTYPE_FLOAT16") = cc::kFloat16;
  m.attr("DTYPE_BFLOAT16") = cc::kBFloat16;
  m.attr("REDUCTION_NONE") = cc::kReduceNone;
  m.attr("REDUCTION_SUM") = cc::kReduceSum;
  m.attr("REDUCTION_MEAN") = cc::kReduceMean;

  // The launches run asynchronously on the given stream; releasing the GIL is unnecessary.
  m.def(
      "gaussian_nll_fwd",
      [](const ViewTuple& x, const ViewTuple& mean, const ViewTuple& log_scale, const ViewTuple& out,
         std::uintptr_t workspace, std::int64_t workspace_numel, std::int64_t rows, std::int64_t cols,
         float log_scale_min, int reduction, int dtype, int device, std::uintptr_t stream) {
        cc::gaussian_nll_fwd(view(x), view(mean), view(log_scale), view(out), workspace, workspace_numel, rows, cols,
                             log_scale_min, reduction, context(dtype, device, stream));
      },
      py::arg("x"), py::arg("mean"), py::arg("log_scale"), py::arg("out"), py::arg("workspace"),
      py::arg("workspace_numel"), py::arg("rows"), py::arg("cols"), py::arg("log_scale_min"), py::arg("reduction"),
      py::arg("dtype"), py::arg("device"), py::arg("stream"),
      "Gaussian NLL forward. reduction 0: out is a float32 (rows, cols) view; 1/2: out is one float32 element and "
      "workspace a float32 buffer of workspace_numel (MAX_PARTIALS) elements.");

  m.def(
      "gaussian_nll_bwd",
      [](const ViewTuple& grad, const ViewTuple& x, const ViewTuple& mean, const ViewTuple& log_scale,
         const ViewTuple& dx, const ViewTuple& dmean, const ViewTuple& dlog_scale, std::int64_t rows,
         std::int64_t cols, float log_scale_min, int reduction, int dtype, int device, std::uintptr_t stream) {
        cc::gaussian_nll_bwd(view(grad), view(x), view(mean), view(log_scale), view(dx), view(dmean),
                             view(dlog_scale), rows, cols, log_scale_min, reduction,
                             context(dtype, device, stream));
      },
      py::arg("grad"), py::arg("x"), py::arg("mean"), py::arg("log_scale"), py::arg("dx"), py::arg("dmean"),
      py::arg("dlog_scale"), py::arg("rows"), py::arg("cols"), py::arg("log_scale_min"), py::arg("reduction"),
      py::arg("dtype"), py::arg("device"), py::arg("stream"),
      "Gaussian NLL backward. grad is float32: a (rows, cols) view for reduction 0, else one element.");

  m.def(
      "gaussian_kl_fwd",
      [](const ViewTuple& mean_q, const ViewTuple& log_scale_q, const ViewTuple& mean_p, const ViewTuple& log_scale_p,
         const ViewTuple& out, std::uintptr_t workspace, std::int64_t workspace_numel, std::int64_t rows,
         std::int64_t cols, float log_scale_min, float reg_weight, int reduction, int dtype, int device,
         std::uintptr_t stream) {
        cc::gaussian_kl_fwd(view(mean_q), view(log_scale_q), view(mean_p), view(log_scale_p), view(out), workspace,
                            workspace_numel, rows, cols, log_scale_min, reg_weight, reduction,
                            context(dtype, device, stream));
      },
      py::arg("mean_q"), py::arg("log_scale_q"), py::arg("mean_p"), py::arg("log_scale_p"), py::arg("out"),
      py::arg("workspace"), py::arg("workspace_numel"), py::arg("rows"), py::arg("cols"), py::arg("log_scale_min"),
      py::arg("reg_weight"), py::arg("reduction"), py::arg("dtype"), py::arg("device"), py::arg("stream"),
      "Regularised reverse KL(q || p) forward (ClariNet), per element or reduced.");

  m.def(
      "gaussian_kl_bwd",
      [](const ViewTuple& grad, const ViewTuple& mean_q, const ViewTuple& log_scale_q, const ViewTuple& mean_p,
         const ViewTuple& log_scale_p, const ViewTuple& dmean_q, const ViewTuple& dlog_scale_q,
         const ViewTuple& dmean_p, const ViewTuple& dlog_scale_p, std::int64_t rows, std::int64_t cols,
         float log_scale_min, float reg_weight, int reduction, int dtype, int device, std::uintptr_t stream) {
        cc::gaussian_kl_bwd(view(grad), view(mean_q), view(log_scale_q), view(mean_p), view(log_scale_p),
                            view(dmean_q), view(dlog_scale_q), view(dmean_p), view(dlog_scale_p), rows, cols,
                            log_scale_min, reg_weight, reduction, context(dtype, device, stream));
      },
      py::arg("grad"), py::arg("mean_q"), py::arg("log_scale_q"), py::arg("mean_p"), py::arg("log_scale_p"),
      py::arg("dmean_q"), py::arg("dlog_scale_q"), py::arg("dmean_p"), py::arg("dlog_scale_p"), py::arg("rows"),
      py::arg("cols"), py::arg("log_scale_min"), py::arg("reg_weight"), py::arg("reduction"), py::arg("dtype"),
      py::arg("device"), py::arg("stream"), "Regularised reverse KL(q || p) backward: the four input gradients.");

  m.def(
      "wavenet_layer_packed_dims",
      [](std::int64_t res_channels, std::int64_t cond_channels, std::int64_t skip_channels,
         std::int64_t half_gate_channels, std::int64_t kernel_size) {
        return cc::wavenet_layer_packed_dims(res_channels, cond_channels, skip_channels, half_gate_channels,
                                             kernel_size);
      },
      py::arg("res_channels"), py::arg("cond_channels"), py::arg("skip_channels"), py::arg("half_gate_channels"),
      py::arg("kernel_size"),
      "(K1p, G2p, Rp, Sp): padded sizes of the packed weights, K1 = kernel_size*res_channels + cond_channels.");

  m.def("wavenet_layer_smem_bytes", &cc::wavenet_layer_smem_bytes, py::arg("dtype"), py::arg("k1_padded"),
        py::arg("g2_padded"), py::arg("tile_t"),
        "Dynamic shared memory one block of the fused layer kernel needs (no CUDA call).");

  m.def(
      "wavenet_layer_fwd",
      [](std::uintptr_t x, std::uintptr_t h, std::uintptr_t w1, std::uintptr_t b1, std::uintptr_t w2,
         std::uintptr_t b2, std::uintptr_t out, std::uintptr_t skip, std::int64_t w1_numel, std::int64_t b1_numel,
         std::int64_t w2_numel, std::int64_t b2_numel, std::int64_t batch, std::int64_t res_channels,
         std::int64_t cond_channels, std::int64_t skip_channels, std::int64_t half_gate_channels,
         std::int64_t kernel_size, std::int64_t time, const Strides3& stride_x, const Strides3& stride_h,
         const Strides3& stride_out, const Strides3& stride_skip, std::int64_t dilation, bool causal, int dtype,
         int device, std::uintptr_t stream) {
        cc::WavenetLayerArgs a;
        a.x = x;
        a.h = h;
        a.w1 = w1;
        a.b1 = b1;
        a.w2 = w2;
        a.b2 = b2;
        a.out = out;
        a.skip = skip;
        a.w1_numel = w1_numel;
        a.b1_numel = b1_numel;
        a.w2_numel = w2_numel;
        a.b2_numel = b2_numel;
        a.batch = batch;
        a.res_channels = res_channels;
        a.cond_channels = cond_channels;
        a.skip_channels = skip_channels;
        a.half_gate_channels = half_gate_channels;
        a.kernel_size = kernel_size;
        a.time = time;
        std::tie(a.stride_x_b, a.stride_x_r, a.stride_x_t) = stride_x;
        std::tie(a.stride_h_b, a.stride_h_c, a.stride_h_t) = stride_h;
        std::tie(a.stride_out_b, a.stride_out_r, a.stride_out_t) = stride_out;
        std::tie(a.stride_skip_b, a.stride_skip_s, a.stride_skip_t) = stride_skip;
        a.dilation = dilation;
        a.causal = causal;
        cc::wavenet_layer_fwd(a, context(dtype, device, stream));
      },
      py::arg("x"), py::arg("h"), py::arg("w1"), py::arg("b1"), py::arg("w2"), py::arg("b2"), py::arg("out"),
      py::arg("skip"), py::arg("w1_numel"), py::arg("b1_numel"), py::arg("w2_numel"), py::arg("b2_numel"),
      py::arg("batch"), py::arg("res_channels"), py::arg("cond_channels"), py::arg("skip_channels"),
      py::arg("half_gate_channels"), py::arg("kernel_size"), py::arg("time"), py::arg("stride_x"),
      py::arg("stride_h"), py::arg("stride_out"), py::arg("stride_skip"), py::arg("dilation"), py::arg("causal"),
      py::arg("dtype"), py::arg("device"), py::arg("stream"),
      "Fused WaveNet residual layer forward over packed weights (layout in csrc/cuda/clarinet_cuda.h). "
      "Strides are (batch, channel, time) triples in elements.");
}
