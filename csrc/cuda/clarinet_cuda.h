// clarinet._cuda: host-side launch functions shared by the .cu files (nvcc) and
// bindings.cpp (g++, pybind11).
//
// The public part of this header is plain C++ (no CUDA, no pybind11, no torch):
// device memory is passed as integer addresses, strides are in elements, the
// stream is a cudaStream_t passed as an integer. Every launch function checks
// its arguments first (std::invalid_argument, a ValueError in Python), then
// selects the device, launches on the stream and checks the launch
// (std::runtime_error with cudaGetErrorString).
//
// The part under __CUDACC__ holds helpers used by the .cu files only.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace clarinet_cuda {

// dtype codes, shared with clarinet/_cuda_ops.py
constexpr int kFloat32 = 0;
constexpr int kFloat16 = 1;
constexpr int kBFloat16 = 2;

// reduction codes, shared with clarinet/_cuda_ops.py
constexpr int kReduceNone = 0;
constexpr int kReduceSum = 1;
constexpr int kReduceMean = 2;

// Upper bound on the blocks of a reducing loss kernel, hence on the float32
// partial sums it writes into the caller's workspace. Fixed (not read off the
// device) so that a reduction sums in the same order on every GPU.
constexpr int kMaxPartials = 1024;

// One input or output of an elementwise loss, seen as a 2-D (rows, cols)
// strided view (clarinet/_layout.py: collapse_2d).
struct View2D {
  std::uintptr_t ptr = 0;      // device address of element (0, 0)
  std::int64_t stride_row = 0;  // in elements
  std::int64_t stride_col = 0;  // in elements
};

// Where and how to launch.
struct LaunchContext {
  int dtype = kFloat32;          // dtype of the inputs (kFloat32 / kFloat16 / kBFloat16)
  int device = 0;                // CUDA device index
  std::uintptr_t stream = 0;     // cudaStream_t
};

// ---- Gaussian negative log-likelihood ---------------------------------------
// reduction == kReduceNone: out is a float32 (rows, cols) view, one loss per element.
// Otherwise out points to one float32 element (the sum, or the mean), and
// workspace to workspace_numel float32 elements of scratch (kMaxPartials is enough).
void gaussian_nll_fwd(const View2D& x, const View2D& mean, const View2D& log_scale, const View2D& out,
                      std::uintptr_t workspace, std::int64_t workspace_numel, std::int64_t rows,
                      std::int64_t cols, float log_scale_min, int reduction, const LaunchContext& ctx);

// grad is float32: a (rows, cols) view for kReduceNone, else one element (its strides are ignored).
// dx, dmean, dlog_scale are views in the input dtype.
void gaussian_nll_bwd(const View2D& grad, const View2D& x, const View2D& mean, const View2D& log_scale,
                      const View2D& dx, const View2D& dmean, const View2D& dlog_scale, std::int64_t rows,
                      std::int64_t cols, float log_scale_min, int reduction, const LaunchContext& ctx);

// ---- Regularised reverse KL between Gaussians (ClariNet) ---------------------
void gaussian_kl_fwd(const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p,
                     const View2D& log_scale_p, const View2D& out, std::uintptr_t workspace,
                     std::int64_t workspace_numel, std::int64_t rows, std::int64_t cols, float log_scale_min,
                     float reg_weight, int reduction, const LaunchContext& ctx);

void gaussian_kl_bwd(const View2D& grad, const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p,
                     const View2D& log_scale_p, const View2D& dmean_q, const View2D& dlog_scale_q,
                     const View2D& dmean_p, const View2D& dlog_scale_p, std::int64_t rows, std::int64_t cols,
                     float log_scale_min, float reg_weight, int reduction, const LaunchContext& ctx);

// ---- Fused WaveNet residual layer (inference forward) -------------------------
// Packed weight layout (built by clarinet/_cuda_ops.py, sizes from wavenet_layer_packed_dims):
//   w1: (2*G2p, K1p) row-major in the input dtype, K1 = K*R + C:
//       w1[g,       k*R + r] = w_dil[g, r, k]        (g < G2: tanh half)
//       w1[G2p + g, k*R + r] = w_dil[G2 + g, r, k]   (sigmoid half)
//       w1[.,       K*R + c] = w_cond[., c]          (same row mapping)
//       every other element zero.
//   b1: (2*G2p,) float32, b_dil with the same row mapping, zero elsewhere.
//   w2: (Rp + Sp, G2p) row-major in the input dtype: rows [0, R) = w_res, rows [Rp, Rp + S) = w_skip.
//   b2: (Rp + Sp,) float32: b_res then b_skip with the same row mapping.
// w1 and w2 must be 32-byte aligned (tensor-core fragment loads).
struct WavenetLayerArgs {
  // pointers (device addresses)
  std::uintptr_t x = 0;     // (B, R, T)
  std::uintptr_t h = 0;     // (B, C, T), 0 when C == 0
  std::uintptr_t w1 = 0, b1 = 0, w2 = 0, b2 = 0;  // packed, see above
  std::uintptr_t out = 0;   // (B, R, T)
  std::uintptr_t skip = 0;  // (B, S, T)
  // sizes of the packed buffers, in elements (checked against the layout above)
  std::int64_t w1_numel = 0, b1_numel = 0, w2_numel = 0, b2_numel = 0;
  // sizes
  std::int64_t batch = 0;               // B
  std::int64_t res_channels = 0;        // R
  std::int64_t cond_channels = 0;       // C (0: no conditioning)
  std::int64_t skip_channels = 0;       // S
  std::int64_t half_gate_channels = 0;  // G2 = G / 2
  std::int64_t kernel_size = 0;         // K
  std::int64_t time = 0;                // T
  // strides (elements)
  std::int64_t stride_x_b = 0, stride_x_r = 0, stride_x_t = 0;
  std::int64_t stride_h_b = 0, stride_h_c = 0, stride_h_t = 0;
  std::int64_t stride_out_b = 0, stride_out_r = 0, stride_out_t = 0;
  std::int64_t stride_skip_b = 0, stride_skip_s = 0, stride_skip_t = 0;
  // convolution
  std::int64_t dilation = 1;
  bool causal = true;
};

void wavenet_layer_fwd(const WavenetLayerArgs& args, const LaunchContext& ctx);

// (K1p, G2p, Rp, Sp): the padded sizes of the packed layout above.
std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t> wavenet_layer_packed_dims(
    std::int64_t res_channels, std::int64_t cond_channels, std::int64_t skip_channels,
    std::int64_t half_gate_channels, std::int64_t kernel_size);

// Dynamic shared memory (bytes) one block of the fused layer kernel needs for a
// time tile of tile_t samples (32 or 64). No CUDA call.
std::int64_t wavenet_layer_smem_bytes(int dtype, std::int64_t k1_padded, std::int64_t g2_padded, int tile_t);

// ---- Incremental WaveNet sampling: persistent kernel over thread-block clusters ---------------
// (csrc/cuda/wavenet_sampler.cu: kernels; wavenet_sampler_host.cu: plan and launch; the torch-facing
// launcher is clarinet/_cuda_ops.py)
constexpr int kMaxSamplerLayers = 64;

struct WavenetSamplerDims {
  std::int64_t res_channels = 0;   // R
  std::int64_t gate_channels = 0;  // G (even)
  std::int64_t skip_channels = 0;  // S
  std::int64_t kernel_size = 0;    // K
  std::int64_t cond_channels = 0;  // C
  std::vector<std::int64_t> dilations;  // one per layer
};

// What wavenet_sampler_plan chose (ok == false: `reason` says why the model/GPU is unsupported).
// Packed weight layout for a cluster of N = `cluster` CTAs, g = gate_per_cta = ceil(G/2 / N),
// S1 = skip_per_cta = ceil(S / N), built by clarinet/_cuda_ops.py in the weight dtype:
//   wpack (N, rank_elems); rank j's row:
//     [0, head1_elems)              W1 columns [j*S1, j*S1 + S1) as (S, S1): [s, c] = w_out1[j*S1 + c, s]
//     [head1_elems, head_elems)     W2 rows of those columns as (S1, 2): [c, m] = w_out2[m, j*S1 + c]
//     layer l at head_elems + l * layer_elems:
//       [0, wa_elems)               (K*R, 2g): [k*R + r, c] = w_dil[j*g + c, r, k] (c < g, tanh half),
//                                   w_dil[G/2 + j*g + c - g, r, k] (c >= g, sigmoid half)
//       [wa_elems, layer_elems)     (g + 1, R + S): row i < g: cat(w_res, w_skip)[:, j*g + i];
//                                   row g: cat(b_res, b_skip) on rank 0, zero on the others
//   zero where a gate or skip index is >= G/2 or S; every region padded to 16 bytes.
//   fpack float32 (fpack_elems): w_in (R) | b_in (R) | b_out2 (2) | b_out1 padded to N * S1.
//   wcond (C, layers*G) in the weight dtype: [c, l*G + g] = w_cond of layer l; bcond float32
//   (layers*G): b_dil of every layer.
//   ring: float32 (B, ring_per_batch): per layer ((K-1)*d, Rp) rows, Rp = R rounded up to 4, slot of
//   step s at s % ((K-1)*d); zeros (silence) or a carried state. cond: float32 workspace
//   >= B * min(chunk, T) * layers*G.
struct WavenetSamplerPlan {
  bool ok = false;
  std::string reason;
  int cluster = 0;          // CTAs per cluster
  int batch_template = 0;   // kernel instance (max batch elements per group): 1, 2, 4 or 8
  int group_batch = 0;      // batch elements per group (<= batch_template)
  std::int64_t groups = 0;  // ceil(batch / group_batch)
  int clusters = 0;         // clusters launched (each loops over groups)
  int resident_layers = 0;  // layers whose weights are in shared memory (the rest read from L2)
  std::int64_t smem_bytes = 0;
  int gate_per_cta = 0, skip_per_cta = 0;
  std::int64_t rank_elems = 0, head_elems = 0, head1_elems = 0, wa_elems = 0, layer_elems = 0;
  std::int64_t fpack_elems = 0, ring_per_batch = 0;
  std::int64_t batch = 0;
  int dtype = 0;
};

// force_cluster: 0 auto, else 1/2/4/8/16; force_resident: -1 auto, else at most that many layers
// in shared memory (tests use both to reach the multi-CTA and the streaming paths on small models).
// Queries the device (attributes, cudaOccupancyMaxActiveClusters); throws only on bad arguments.
WavenetSamplerPlan wavenet_sampler_plan(const WavenetSamplerDims& dims, int dtype, std::int64_t batch, int device,
                                        int force_cluster, int force_resident);

// The packed sizes for a cluster of `cluster` CTAs without any device query (ok == false; the
// launch fields are zero): for packing and checking the layout on a machine without a GPU.
WavenetSamplerPlan wavenet_sampler_layout(const WavenetSamplerDims& dims, int dtype, int cluster);

struct WavenetSampleArgs {
  // pointers (device addresses)
  std::uintptr_t h = 0;        // (B, C, T) weight dtype, any strides
  std::uintptr_t src = 0;      // (B, T) weight dtype: noise, or the forced audio
  std::uintptr_t x_out = 0, mean_out = 0, ls_out = 0;  // (B, T) float32 contiguous
  std::uintptr_t wpack = 0, fpack = 0, wcond = 0, bcond = 0;  // packed, see WavenetSamplerPlan
  std::uintptr_t ring = 0, cond = 0;                          // float32 workspaces
  std::uintptr_t prev = 0;  // float32 (B,): the input of step 0 (carried state), 0: silence
  // sizes of the buffers, in elements (checked)
  std::int64_t wpack_numel = 0, fpack_numel = 0, wcond_numel = 0, bcond_numel = 0, ring_numel = 0, cond_numel = 0;
  // sizes
  std::int64_t batch = 0, time = 0, chunk = 0;
  std::int64_t step0 = 0;  // absolute step of t = 0: ring slot of step t is (step0 + t) % ((K-1) * d)
  // strides (elements)
  std::int64_t stride_h_b = 0, stride_h_c = 0, stride_h_t = 0;
  std::int64_t stride_src_b = 0, stride_src_t = 0;
  // sampling
  bool forced = false;
  float temperature = 1.f, log_scale_min = -9.f;
};

// Runs every step: per chunk of min(chunk, T) steps, the conditioning kernel then one launch of
// the persistent sampler. Writes x_out (the forced audio when forced), mean_out, ls_out.
void wavenet_sample_run(const WavenetSamplerDims& dims, const WavenetSampleArgs& args, const WavenetSamplerPlan& plan,
                        const LaunchContext& ctx);

}  // namespace clarinet_cuda

// -----------------------------------------------------------------------------
// Internal helpers for the .cu files.
#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace clarinet_cuda {
namespace detail {

// ---- dtype conversions (float32 math, one rounding at the store) ----
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
struct Convert;
template <>
struct Convert<float> {
  static __device__ __forceinline__ float from(float v) { return v; }
};
template <>
struct Convert<__half> {
  static __device__ __forceinline__ __half from(float v) { return __float2half_rn(v); }
};
template <>
struct Convert<__nv_bfloat16> {
  static __device__ __forceinline__ __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return Convert<T>::from(v);
}

// ---- host-side checks ----
inline void check_arg(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("clarinet._cuda: " + message);
}

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("clarinet._cuda: ") + what + ": " + cudaGetErrorString(err));
  }
}

// Makes `device` current for the launch and restores the caller's device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    device_ = device;
  }
  ~DeviceGuard() {
    if (previous_ != device_) cudaSetDevice(previous_);  // best effort: no throw from a destructor
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  int device_ = 0;
};

// Launches `kernel(params)` and checks both the launch call and cudaGetLastError.
template <typename P>
void launch(void (*kernel)(P), dim3 grid, dim3 block, std::size_t smem_bytes, cudaStream_t stream, P params,
            const char* name) {
  void* args[] = {&params};
  check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block, args, smem_bytes, stream), name);
  check_cuda(cudaGetLastError(), name);
}

inline const char* dtype_name(int dtype) {
  switch (dtype) {
    case kFloat32: return "float32";
    case kFloat16: return "float16";
    case kBFloat16: return "bfloat16";
    default: return "unknown";
  }
}

}  // namespace detail
}  // namespace clarinet_cuda
#endif  // __CUDACC__
