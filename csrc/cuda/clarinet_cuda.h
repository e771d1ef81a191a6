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
#include <tuple>

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
