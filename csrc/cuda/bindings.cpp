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
#include <vector>

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
using Strides2 = std::tuple<std::int64_t, std::int64_t>;

cc::WavenetSamplerDims sampler_dims(std::int64_t res_channels, std::int64_t gate_channels, std::int64_t skip_channels,
                                    std::int64_t kernel_size, std::int64_t cond_channels,
                                    const std::vector<std::int64_t>& dilations) {
  cc::WavenetSamplerDims d;
  d.res_channels = res_channels;
  d.gate_channels = gate_channels;
  d.skip_channels = skip_channels;
  d.kernel_size = kernel_size;
  d.cond_channels = cond_channels;
  d.dilations = dilations;
  return d;
}

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
         std::uintptr_t stream, bool reg_raw) {
        cc::gaussian_kl_fwd(view(mean_q), view(log_scale_q), view(mean_p), view(log_scale_p), view(out), workspace,
                            workspace_numel, rows, cols, log_scale_min, reg_weight, reduction,
                            context(dtype, device, stream), reg_raw);
      },
      py::arg("mean_q"), py::arg("log_scale_q"), py::arg("mean_p"), py::arg("log_scale_p"), py::arg("out"),
      py::arg("workspace"), py::arg("workspace_numel"), py::arg("rows"), py::arg("cols"), py::arg("log_scale_min"),
      py::arg("reg_weight"), py::arg("reduction"), py::arg("dtype"), py::arg("device"), py::arg("stream"),
      py::arg("reg_raw") = false,
      "Regularised reverse KL(q || p) forward (ClariNet), per element or reduced; reg_raw: the regulariser on the "
      "raw log-scales.");

  m.def(
      "gaussian_kl_bwd",
      [](const ViewTuple& grad, const ViewTuple& mean_q, const ViewTuple& log_scale_q, const ViewTuple& mean_p,
         const ViewTuple& log_scale_p, const ViewTuple& dmean_q, const ViewTuple& dlog_scale_q,
         const ViewTuple& dmean_p, const ViewTuple& dlog_scale_p, std::int64_t rows, std::int64_t cols,
         float log_scale_min, float reg_weight, int reduction, int dtype, int device, std::uintptr_t stream,
         bool reg_raw) {
        cc::gaussian_kl_bwd(view(grad), view(mean_q), view(log_scale_q), view(mean_p), view(log_scale_p),
                            view(dmean_q), view(dlog_scale_q), view(dmean_p), view(dlog_scale_p), rows, cols,
                            log_scale_min, reg_weight, reduction, context(dtype, device, stream), reg_raw);
      },
      py::arg("grad"), py::arg("mean_q"), py::arg("log_scale_q"), py::arg("mean_p"), py::arg("log_scale_p"),
      py::arg("dmean_q"), py::arg("dlog_scale_q"), py::arg("dmean_p"), py::arg("dlog_scale_p"), py::arg("rows"),
      py::arg("cols"), py::arg("log_scale_min"), py::arg("reg_weight"), py::arg("reduction"), py::arg("dtype"),
      py::arg("device"), py::arg("stream"), py::arg("reg_raw") = false,
      "Regularised reverse KL(q || p) backward: the four input gradients.");

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

  // ---- incremental WaveNet sampling (persistent cluster kernel) ----
  py::class_<cc::WavenetSamplerPlan>(m, "WavenetSamplerPlan",
                                     "The CUDA sampler's choice for a model, dtype, batch and device "
                                     "(wavenet_sampler_plan); packed layout in csrc/cuda/clarinet_cuda.h.")
      .def_readonly("ok", &cc::WavenetSamplerPlan::ok)
      .def_readonly("reason", &cc::WavenetSamplerPlan::reason)
      .def_readonly("cluster", &cc::WavenetSamplerPlan::cluster)
      .def_readonly("batch_template", &cc::WavenetSamplerPlan::batch_template)
      .def_readonly("group_batch", &cc::WavenetSamplerPlan::group_batch)
      .def_readonly("groups", &cc::WavenetSamplerPlan::groups)
      .def_readonly("clusters", &cc::WavenetSamplerPlan::clusters)
      .def_readonly("resident_layers", &cc::WavenetSamplerPlan::resident_layers)
      .def_readonly("smem_bytes", &cc::WavenetSamplerPlan::smem_bytes)
      .def_readonly("gate_per_cta", &cc::WavenetSamplerPlan::gate_per_cta)
      .def_readonly("skip_per_cta", &cc::WavenetSamplerPlan::skip_per_cta)
      .def_readonly("rank_elems", &cc::WavenetSamplerPlan::rank_elems)
      .def_readonly("head_elems", &cc::WavenetSamplerPlan::head_elems)
      .def_readonly("head1_elems", &cc::WavenetSamplerPlan::head1_elems)
      .def_readonly("wa_elems", &cc::WavenetSamplerPlan::wa_elems)
      .def_readonly("layer_elems", &cc::WavenetSamplerPlan::layer_elems)
      .def_readonly("fpack_elems", &cc::WavenetSamplerPlan::fpack_elems)
      .def_readonly("ring_per_batch", &cc::WavenetSamplerPlan::ring_per_batch)
      .def_readonly("batch", &cc::WavenetSamplerPlan::batch)
      .def_readonly("dtype", &cc::WavenetSamplerPlan::dtype)
      .def("__repr__", [](const cc::WavenetSamplerPlan& p) {
        if (!p.ok) return "WavenetSamplerPlan(ok=False, reason='" + p.reason + "')";
        return "WavenetSamplerPlan(cluster=" + std::to_string(p.cluster) + ", batch_template=" +
               std::to_string(p.batch_template) + ", group_batch=" + std::to_string(p.group_batch) +
               ", clusters=" + std::to_string(p.clusters) + ", resident_layers=" +
               std::to_string(p.resident_layers) + ", smem_bytes=" + std::to_string(p.smem_bytes) + ")";
      });

  m.attr("SAMPLER_MAX_LAYERS") = cc::kMaxSamplerLayers;

  m.def(
      "wavenet_sampler_plan",
      [](std::int64_t res_channels, std::int64_t gate_channels, std::int64_t skip_channels, std::int64_t kernel_size,
         std::int64_t cond_channels, const std::vector<std::int64_t>& dilations, int dtype, std::int64_t batch,
         int device, int cluster, int max_resident) {
        return cc::wavenet_sampler_plan(
            sampler_dims(res_channels, gate_channels, skip_channels, kernel_size, cond_channels, dilations), dtype,
            batch, device, cluster, max_resident);
      },
      py::arg("res_channels"), py::arg("gate_channels"), py::arg("skip_channels"), py::arg("kernel_size"),
      py::arg("cond_channels"), py::arg("dilations"), py::arg("dtype"), py::arg("batch"), py::arg("device"),
      py::arg("cluster") = 0, py::arg("max_resident") = -1,
      "Cluster size, batch grouping, resident layers and packed sizes of the CUDA sampler for this model on "
      "this device (queries the device). plan.ok False: plan.reason says why it cannot run. cluster: 0 auto or "
      "1/2/4/8/16; max_resident: -1 auto, else at most that many layers in shared memory.");

  m.def(
      "wavenet_sampler_layout",
      [](std::int64_t res_channels, std::int64_t gate_channels, std::int64_t skip_channels, std::int64_t kernel_size,
         std::int64_t cond_channels, const std::vector<std::int64_t>& dilations, int dtype, int cluster) {
        return cc::wavenet_sampler_layout(
            sampler_dims(res_channels, gate_channels, skip_channels, kernel_size, cond_channels, dilations), dtype,
            cluster);
      },
      py::arg("res_channels"), py::arg("gate_channels"), py::arg("skip_channels"), py::arg("kernel_size"),
      py::arg("cond_channels"), py::arg("dilations"), py::arg("dtype"), py::arg("cluster"),
      "The packed sizes of the CUDA sampler for a cluster of `cluster` CTAs (no device query; ok is False).");

  m.def(
      "wavenet_sample_run",
      [](std::int64_t res_channels, std::int64_t gate_channels, std::int64_t skip_channels, std::int64_t kernel_size,
         std::int64_t cond_channels, const std::vector<std::int64_t>& dilations, const cc::WavenetSamplerPlan& plan,
         std::uintptr_t h, std::uintptr_t src, std::uintptr_t x_out, std::uintptr_t mean_out, std::uintptr_t ls_out,
         std::uintptr_t wpack, std::int64_t wpack_numel, std::uintptr_t fpack, std::int64_t fpack_numel,
         std::uintptr_t wcond, std::int64_t wcond_numel, std::uintptr_t bcond, std::int64_t bcond_numel,
         std::uintptr_t ring, std::int64_t ring_numel, std::uintptr_t cond, std::int64_t cond_numel,
         std::uintptr_t prev, std::int64_t step0, std::int64_t batch, std::int64_t time, std::int64_t chunk,
         const Strides3& stride_h, const Strides2& stride_src, bool forced, float temperature, float log_scale_min,
         int dtype, int device, std::uintptr_t stream, float clip) {
        cc::WavenetSampleArgs a;
        a.h = h;
        a.src = src;
        a.x_out = x_out;
        a.mean_out = mean_out;
        a.ls_out = ls_out;
        a.wpack = wpack;
        a.wpack_numel = wpack_numel;
        a.fpack = fpack;
        a.fpack_numel = fpack_numel;
        a.wcond = wcond;
        a.wcond_numel = wcond_numel;
        a.bcond = bcond;
        a.bcond_numel = bcond_numel;
        a.ring = ring;
        a.ring_numel = ring_numel;
        a.cond = cond;
        a.cond_numel = cond_numel;
        a.prev = prev;
        a.step0 = step0;
        a.batch = batch;
        a.time = time;
        a.chunk = chunk;
        std::tie(a.stride_h_b, a.stride_h_c, a.stride_h_t) = stride_h;
        std::tie(a.stride_src_b, a.stride_src_t) = stride_src;
        a.forced = forced;
        a.temperature = temperature;
        a.log_scale_min = log_scale_min;
        a.clip = clip;
        cc::wavenet_sample_run(
            sampler_dims(res_channels, gate_channels, skip_channels, kernel_size, cond_channels, dilations), a, plan,
            context(dtype, device, stream));
      },
      py::arg("res_channels"), py::arg("gate_channels"), py::arg("skip_channels"), py::arg("kernel_size"),
      py::arg("cond_channels"), py::arg("dilations"), py::arg("plan"), py::arg("h"), py::arg("src"), py::arg("x_out"),
      py::arg("mean_out"), py::arg("ls_out"), py::arg("wpack"), py::arg("wpack_numel"), py::arg("fpack"),
      py::arg("fpack_numel"), py::arg("wcond"), py::arg("wcond_numel"), py::arg("bcond"), py::arg("bcond_numel"),
      py::arg("ring"), py::arg("ring_numel"), py::arg("cond"), py::arg("cond_numel"), py::arg("prev"),
      py::arg("step0"), py::arg("batch"),
      py::arg("time"), py::arg("chunk"), py::arg("stride_h"), py::arg("stride_src"), py::arg("forced"),
      py::arg("temperature"), py::arg("log_scale_min"), py::arg("dtype"), py::arg("device"), py::arg("stream"),
      py::arg("clip") = INFINITY,
      "Incremental WaveNet sampling over packed weights (layout in csrc/cuda/clarinet_cuda.h): per chunk the "
      "conditioning kernel and one persistent cluster kernel. h (B, C, T) and src (B, T) in the weight dtype "
      "(strides in elements); x_out, mean_out, ls_out float32 (B, T) contiguous; ring float32 (zeros, or a "
      "carried state at clock step0 with prev the input of the first step; prev 0: silence).");
}
