// Elementwise Gaussian losses of ClariNet, forward and backward:
//   gaussian_nll: the teacher's negative log-likelihood of x under N(mean, exp(log_scale)^2),
//   gaussian_kl:  the student's regularised reverse KL(q || p) per sample.
//
// Every tensor is addressed as a 2-D (rows, cols) strided view. The work is cut
// into tiles of kThreads * VEC consecutive columns of one row; a grid of at most
// kMaxGridElementwise (or kMaxPartials when reducing) blocks strides over the tiles.
//   VECTOR == true  (every view has stride_col == 1, 16-byte aligned rows): thread i of a
//     tile owns VEC consecutive columns and moves them with 16-byte loads and stores;
//     the ragged end of a row falls back to masked scalar accesses.
//   VECTOR == false: thread i owns columns i, i + kThreads, ... (coalesced when stride_col == 1).
// Reductions are deterministic: each block writes one float32 partial sum (fixed
// assignment of tiles to blocks and a fixed-order block reduction), then one block
// adds the partials in a fixed order in float64 and writes the result times scale.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "clarinet_cuda.h"

namespace clarinet_cuda {
namespace {

using detail::check_arg;
using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;
constexpr int kMaxGridElementwise = 4096;
constexpr float kHalfLog2Pi = 0.918938533204672742f;  // 0.5 * log(2 * pi)

// elements per thread and tile: one 16-byte vector of the input dtype
template <typename T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

template <typename T, int N>
struct alignas(16) Pack {
  T v[N];
};

// ---- parameters ----------------------------------------------------------------

template <typename T>
struct GaussianNllParams {
  // pointers: inputs
  const T* __restrict__ x;
  const T* __restrict__ mean;
  const T* __restrict__ log_scale;
  const float* __restrict__ grad;  // backward: (rows, cols) view ("none") or one element ("sum"/"mean")
  // pointers: outputs
  float* __restrict__ loss;      // forward "none": per-element loss
  float* __restrict__ partials;  // forward "sum"/"mean": one partial sum per block
  T* __restrict__ dx;
  T* __restrict__ dmean;
  T* __restrict__ dlog_scale;
  // sizes
  int64_t rows, cols;
  int64_t tiles_per_row, num_tiles;
  // strides (elements)
  int64_t stride_x_row, stride_x_col;
  int64_t stride_mean_row, stride_mean_col;
  int64_t stride_log_scale_row, stride_log_scale_col;
  int64_t stride_grad_row, stride_grad_col;
  int64_t stride_loss_row, stride_loss_col;
  int64_t stride_dx_row, stride_dx_col;
  int64_t stride_dmean_row, stride_dmean_col;
  int64_t stride_dlog_scale_row, stride_dlog_scale_col;
  // meta-parameters
  float log_scale_min;
  float grad_scale;  // backward "sum"/"mean": d(result)/d(element loss) = grad[0] * grad_scale
};

template <typename T>
struct GaussianKlParams {
  // pointers: inputs
  const T* __restrict__ mean_q;
  const T* __restrict__ log_scale_q;
  const T* __restrict__ mean_p;
  const T* __restrict__ log_scale_p;
  const float* __restrict__ grad;
  // pointers: outputs
  float* __restrict__ loss;
  float* __restrict__ partials;
  T* __restrict__ dmean_q;
  T* __restrict__ dlog_scale_q;
  T* __restrict__ dmean_p;
  T* __restrict__ dlog_scale_p;
  // sizes
  int64_t rows, cols;
  int64_t tiles_per_row, num_tiles;
  // strides (elements)
  int64_t stride_mean_q_row, stride_mean_q_col;
  int64_t stride_log_scale_q_row, stride_log_scale_q_col;
  int64_t stride_mean_p_row, stride_mean_p_col;
  int64_t stride_log_scale_p_row, stride_log_scale_p_col;
  int64_t stride_grad_row, stride_grad_col;
  int64_t stride_loss_row, stride_loss_col;
  int64_t stride_dmean_q_row, stride_dmean_q_col;
  int64_t stride_dlog_scale_q_row, stride_dlog_scale_q_col;
  int64_t stride_dmean_p_row, stride_dmean_p_col;
  int64_t stride_dlog_scale_p_row, stride_dlog_scale_p_col;
  // meta-parameters
  float log_scale_min;
  float reg_weight;
  float grad_scale;
  bool reg_raw;  // the regulariser on the raw log-scales (the peers' reading) instead of the floored ones
};

// ---- tile bookkeeping and chunk I/O -------------------------------------------

// The VEC elements a thread owns in one tile: row `row`, columns col + e * step (e < VEC).
struct Chunk {
  int64_t row;
  int64_t col;
  int64_t step;
  bool contiguous;  // full, stride-1, 16-byte aligned chunk: use vector accesses
};

template <int VEC, bool VECTOR>
__device__ __forceinline__ Chunk make_chunk(int64_t tile, int64_t tiles_per_row, int64_t cols) {
  Chunk c;
  c.row = tile / tiles_per_row;
  const int64_t col0 = (tile - c.row * tiles_per_row) * (int64_t(kThreads) * VEC);
  if (VECTOR) {
    c.col = col0 + int64_t(threadIdx.x) * VEC;
    c.step = 1;
    c.contiguous = c.col + VEC <= cols;
  } else {
    c.col = col0 + threadIdx.x;
    c.step = kThreads;
    c.contiguous = false;
  }
  return c;
}

__device__ __forceinline__ bool in_row(const Chunk& c, int e, int64_t cols) { return c.col + e * c.step < cols; }

// Loads the chunk's elements as float32; elements past the end of the row read as 0.
template <int VEC, typename T>
__device__ __forceinline__ void load_chunk(const T* __restrict__ ptr, int64_t stride_row, int64_t stride_col,
                                           const Chunk& c, int64_t cols, float (&v)[VEC]) {
  const T* p = ptr + c.row * stride_row;
  if (c.contiguous) {
    constexpr int kPer16 = 16 / static_cast<int>(sizeof(T));
    static_assert(VEC % kPer16 == 0, "a chunk is a whole number of 16-byte vectors");
#pragma unroll
    for (int q = 0; q < VEC / kPer16; ++q) {
      const Pack<T, kPer16> pk = *reinterpret_cast<const Pack<T, kPer16>*>(p + c.col + q * kPer16);
#pragma unroll
      for (int i = 0; i < kPer16; ++i) v[q * kPer16 + i] = to_float(pk.v[i]);
    }
  } else {
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const int64_t col = c.col + e * c.step;
      v[e] = col < cols ? to_float(p[col * stride_col]) : 0.f;
    }
  }
}

// Stores the chunk's elements (rounded once to T); elements past the end of the row are skipped.
template <int VEC, typename T>
__device__ __forceinline__ void store_chunk(T* __restrict__ ptr, int64_t stride_row, int64_t stride_col,
                                            const Chunk& c, int64_t cols, const float (&v)[VEC]) {
  T* p = ptr + c.row * stride_row;
  if (c.contiguous) {
    constexpr int kPer16 = 16 / static_cast<int>(sizeof(T));
    static_assert(VEC % kPer16 == 0, "a chunk is a whole number of 16-byte vectors");
#pragma unroll
    for (int q = 0; q < VEC / kPer16; ++q) {
      Pack<T, kPer16> pk;
#pragma unroll
      for (int i = 0; i < kPer16; ++i) pk.v[i] = from_float<T>(v[q * kPer16 + i]);
      *reinterpret_cast<Pack<T, kPer16>*>(p + c.col + q * kPer16) = pk;
    }
  } else {
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const int64_t col = c.col + e * c.step;
      if (col < cols) p[col * stride_col] = from_float<T>(v[e]);
    }
  }
}

// torch.clamp(v, min=lo): NaN propagates (a comparison with NaN is false).
__device__ __forceinline__ float clamp_min(float v, float lo) { return v < lo ? lo : v; }

// Sum over the block, in a fixed order (deterministic). The result is valid in thread 0.
// Uses static shared memory: call at most once per kernel.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_sums[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.f;
  if (threadIdx.x == 0) {
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  }
  return total;
}

// ---- kernels ---------------------------------------------------------------------

template <typename T, bool VECTOR, bool REDUCE>
__global__ void __launch_bounds__(kThreads) gaussian_nll_fwd_kernel(const GaussianNllParams<T> p) {
  constexpr int VEC = kVec<T>;
  float acc = 0.f;
  for (int64_t tile = blockIdx.x; tile < p.num_tiles; tile += gridDim.x) {
    const Chunk c = make_chunk<VEC, VECTOR>(tile, p.tiles_per_row, p.cols);
    float x[VEC], mean[VEC], log_scale[VEC], loss[VEC];
    load_chunk(p.x, p.stride_x_row, p.stride_x_col, c, p.cols, x);
    load_chunk(p.mean, p.stride_mean_row, p.stride_mean_col, c, p.cols, mean);
    load_chunk(p.log_scale, p.stride_log_scale_row, p.stride_log_scale_col, c, p.cols, log_scale);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const float s = clamp_min(log_scale[e], p.log_scale_min);
      const float u = (x[e] - mean[e]) * expf(-s);
      loss[e] = kHalfLog2Pi + s + 0.5f * u * u;
      if (REDUCE && in_row(c, e, p.cols)) acc += loss[e];
    }
    if (!REDUCE) store_chunk(p.loss, p.stride_loss_row, p.stride_loss_col, c, p.cols, loss);
  }
  if (REDUCE) {
    const float total = block_sum(acc);
    if (threadIdx.x == 0) p.partials[blockIdx.x] = total;
  }
}

template <typename T, bool VECTOR, bool REDUCE>
__global__ void __launch_bounds__(kThreads) gaussian_nll_bwd_kernel(const GaussianNllParams<T> p) {
  constexpr int VEC = kVec<T>;
  const float grad_all = REDUCE ? p.grad[0] * p.grad_scale : 0.f;
  for (int64_t tile = blockIdx.x; tile < p.num_tiles; tile += gridDim.x) {
    const Chunk c = make_chunk<VEC, VECTOR>(tile, p.tiles_per_row, p.cols);
    float x[VEC], mean[VEC], log_scale[VEC], grad[VEC];
    load_chunk(p.x, p.stride_x_row, p.stride_x_col, c, p.cols, x);
    load_chunk(p.mean, p.stride_mean_row, p.stride_mean_col, c, p.cols, mean);
    load_chunk(p.log_scale, p.stride_log_scale_row, p.stride_log_scale_col, c, p.cols, log_scale);
    if (REDUCE) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) grad[e] = grad_all;
    } else {
      load_chunk(p.grad, p.stride_grad_row, p.stride_grad_col, c, p.cols, grad);
    }
    float dx[VEC], dmean[VEC], dlog_scale[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const float s = clamp_min(log_scale[e], p.log_scale_min);
      const float inv = expf(-s);
      const float u = (x[e] - mean[e]) * inv;
      dx[e] = grad[e] * u * inv;
      dmean[e] = -dx[e];
      // torch.clamp's gradient: passes where log_scale >= log_scale_min
      dlog_scale[e] = log_scale[e] >= p.log_scale_min ? grad[e] * (1.f - u * u) : 0.f;
    }
    store_chunk(p.dx, p.stride_dx_row, p.stride_dx_col, c, p.cols, dx);
    store_chunk(p.dmean, p.stride_dmean_row, p.stride_dmean_col, c, p.cols, dmean);
    store_chunk(p.dlog_scale, p.stride_dlog_scale_row, p.stride_dlog_scale_col, c, p.cols, dlog_scale);
  }
}

template <typename T, bool VECTOR, bool REDUCE>
__global__ void __launch_bounds__(kThreads) gaussian_kl_fwd_kernel(const GaussianKlParams<T> p) {
  constexpr int VEC = kVec<T>;
  float acc = 0.f;
  for (int64_t tile = blockIdx.x; tile < p.num_tiles; tile += gridDim.x) {
    const Chunk c = make_chunk<VEC, VECTOR>(tile, p.tiles_per_row, p.cols);
    float mq[VEC], lsq[VEC], mp[VEC], lsp[VEC], loss[VEC];
    load_chunk(p.mean_q, p.stride_mean_q_row, p.stride_mean_q_col, c, p.cols, mq);
    load_chunk(p.log_scale_q, p.stride_log_scale_q_row, p.stride_log_scale_q_col, c, p.cols, lsq);
    load_chunk(p.mean_p, p.stride_mean_p_row, p.stride_mean_p_col, c, p.cols, mp);
    load_chunk(p.log_scale_p, p.stride_log_scale_p_row, p.stride_log_scale_p_col, c, p.cols, lsp);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const float lq = clamp_min(lsq[e], p.log_scale_min);
      const float lp = clamp_min(lsp[e], p.log_scale_min);
      const float diff = lp - lq;
      const float r = expf(-2.f * diff);      // exp(2 (lq - lp)) = sigma_q^2 / sigma_p^2
      const float v = (mq[e] - mp[e]) * expf(-lp);  // (mq - mp) / sigma_p
      const float rd = p.reg_raw ? lsp[e] - lsq[e] : diff;
      loss[e] = diff + 0.5f * r + 0.5f * v * v - 0.5f + p.reg_weight * rd * rd;
      if (REDUCE && in_row(c, e, p.cols)) acc += loss[e];
    }
    if (!REDUCE) store_chunk(p.loss, p.stride_loss_row, p.stride_loss_col, c, p.cols, loss);
  }
  if (REDUCE) {
    const float total = block_sum(acc);
    if (threadIdx.x == 0) p.partials[blockIdx.x] = total;
  }
}

template <typename T, bool VECTOR, bool REDUCE>
__global__ void __launch_bounds__(kThreads) gaussian_kl_bwd_kernel(const GaussianKlParams<T> p) {
  constexpr int VEC = kVec<T>;
  const float grad_all = REDUCE ? p.grad[0] * p.grad_scale : 0.f;
  for (int64_t tile = blockIdx.x; tile < p.num_tiles; tile += gridDim.x) {
    const Chunk c = make_chunk<VEC, VECTOR>(tile, p.tiles_per_row, p.cols);
    float mq[VEC], lsq[VEC], mp[VEC], lsp[VEC], grad[VEC];
    load_chunk(p.mean_q, p.stride_mean_q_row, p.stride_mean_q_col, c, p.cols, mq);
    load_chunk(p.log_scale_q, p.stride_log_scale_q_row, p.stride_log_scale_q_col, c, p.cols, lsq);
    load_chunk(p.mean_p, p.stride_mean_p_row, p.stride_mean_p_col, c, p.cols, mp);
    load_chunk(p.log_scale_p, p.stride_log_scale_p_row, p.stride_log_scale_p_col, c, p.cols, lsp);
    if (REDUCE) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) grad[e] = grad_all;
    } else {
      load_chunk(p.grad, p.stride_grad_row, p.stride_grad_col, c, p.cols, grad);
    }
    float dmq[VEC], dlq[VEC], dmp[VEC], dlp[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      const float lq = clamp_min(lsq[e], p.log_scale_min);
      const float lp = clamp_min(lsp[e], p.log_scale_min);
      const float diff = lp - lq;
      const float r = expf(-2.f * diff);
      const float inv_p = expf(-lp);
      const float v = (mq[e] - mp[e]) * inv_p;
      const float g = grad[e];
      dmq[e] = g * v * inv_p;  // (mq - mp) exp(-2 lp)
      dmp[e] = -dmq[e];
      // the regulariser's gradient: through the floors (reg) or, raw, straight to the inputs (reg_r)
      const float reg = p.reg_raw ? 0.f : 2.f * p.reg_weight * diff;
      const float reg_r = p.reg_raw ? 2.f * p.reg_weight * (lsp[e] - lsq[e]) * g : 0.f;
      dlq[e] = (lsq[e] >= p.log_scale_min ? g * (r - 1.f - reg) : 0.f) - reg_r;
      dlp[e] = (lsp[e] >= p.log_scale_min ? g * (1.f - r - v * v + reg) : 0.f) + reg_r;
    }
    store_chunk(p.dmean_q, p.stride_dmean_q_row, p.stride_dmean_q_col, c, p.cols, dmq);
    store_chunk(p.dlog_scale_q, p.stride_dlog_scale_q_row, p.stride_dlog_scale_q_col, c, p.cols, dlq);
    store_chunk(p.dmean_p, p.stride_dmean_p_row, p.stride_dmean_p_col, c, p.cols, dmp);
    store_chunk(p.dlog_scale_p, p.stride_dlog_scale_p_row, p.stride_dlog_scale_p_col, c, p.cols, dlp);
  }
}

// One block: out[0] = scale * sum(partials[0:n]), summed in float64 in a fixed order.
struct SumPartialsParams {
  const float* __restrict__ partials;
  float* __restrict__ out;
  int n;
  double scale;
};

__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const SumPartialsParams p) {
  __shared__ double warp_sums[kThreads / 32];
  double s = 0.0;
  for (int i = threadIdx.x; i < p.n; i += kThreads) s += static_cast<double>(p.partials[i]);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_down_sync(0xffffffffu, s, offset);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    p.out[0] = static_cast<float>(total * p.scale);
  }
}

// ---- host side ---------------------------------------------------------------------

void check_view(const View2D& v, const char* name) {
  check_arg(v.ptr != 0, std::string(name) + ": null device pointer");
  check_arg(v.stride_row >= 0 && v.stride_col >= 0, std::string(name) + ": negative strides are not supported");
}

void check_common(int64_t rows, int64_t cols, int reduction, const LaunchContext& ctx, const char* op) {
  check_arg(ctx.dtype == kFloat32 || ctx.dtype == kFloat16 || ctx.dtype == kBFloat16,
            std::string(op) + ": dtype code must be 0 (float32), 1 (float16) or 2 (bfloat16), got " +
                std::to_string(ctx.dtype));
  check_arg(reduction == kReduceNone || reduction == kReduceSum || reduction == kReduceMean,
            std::string(op) + ": reduction code must be 0 (none), 1 (sum) or 2 (mean), got " +
                std::to_string(reduction));
  check_arg(rows >= 1 && cols >= 1, std::string(op) + ": empty input (rows=" + std::to_string(rows) +
                                        ", cols=" + std::to_string(cols) + ")");
  check_arg(rows <= INT64_MAX / cols, std::string(op) + ": rows * cols overflows int64");
  check_arg(ctx.device >= 0, std::string(op) + ": negative device index");
}

// True when every view can be moved with 16-byte accesses of `vec` elements per thread.
bool vector_ok(std::initializer_list<const View2D*> views, int64_t rows, int vec) {
  for (const View2D* v : views) {
    if (v->stride_col != 1) return false;
    if (rows > 1 && v->stride_row % vec != 0) return false;
    if (v->ptr % 16 != 0) return false;
  }
  return true;
}

struct Grid {
  int64_t tiles_per_row;
  int64_t num_tiles;
  int blocks;
};

Grid make_grid(int64_t rows, int64_t cols, int vec, bool reduce, int64_t workspace_numel) {
  Grid g;
  const int64_t tile = int64_t(kThreads) * vec;
  g.tiles_per_row = (cols + tile - 1) / tile;
  g.num_tiles = rows * g.tiles_per_row;
  int64_t cap = reduce ? std::min<int64_t>(kMaxPartials, workspace_numel) : kMaxGridElementwise;
  g.blocks = static_cast<int>(std::min<int64_t>(g.num_tiles, cap));
  return g;
}

template <typename KernelFor>
auto pick_kernel(bool vector, bool reduce) {
  if (vector) return reduce ? KernelFor::template get<true, true>() : KernelFor::template get<true, false>();
  return reduce ? KernelFor::template get<false, true>() : KernelFor::template get<false, false>();
}

template <typename T>
struct NllFwd {
  template <bool V, bool R>
  static auto get() { return &gaussian_nll_fwd_kernel<T, V, R>; }
};
template <typename T>
struct NllBwd {
  template <bool V, bool R>
  static auto get() { return &gaussian_nll_bwd_kernel<T, V, R>; }
};
template <typename T>
struct KlFwd {
  template <bool V, bool R>
  static auto get() { return &gaussian_kl_fwd_kernel<T, V, R>; }
};
template <typename T>
struct KlBwd {
  template <bool V, bool R>
  static auto get() { return &gaussian_kl_bwd_kernel<T, V, R>; }
};

void launch_sum_partials(const float* partials, int n, float* out, double scale, cudaStream_t stream) {
  SumPartialsParams sp;
  sp.partials = partials;
  sp.out = out;
  sp.n = n;
  sp.scale = scale;
  detail::launch(&sum_partials_kernel, dim3(1), dim3(kThreads), 0, stream, sp, "sum_partials_kernel launch");
}

double reduction_scale(int reduction, int64_t rows, int64_t cols) {
  return reduction == kReduceMean ? 1.0 / (static_cast<double>(rows) * static_cast<double>(cols)) : 1.0;
}

// ---- gaussian_nll ----

template <typename T>
void run_nll_fwd(const View2D& x, const View2D& mean, const View2D& log_scale, const View2D& out,
                 std::uintptr_t workspace, int64_t workspace_numel, int64_t rows, int64_t cols,
                 float log_scale_min, int reduction, cudaStream_t stream) {
  const bool reduce = reduction != kReduceNone;
  const bool vector = reduce ? vector_ok({&x, &mean, &log_scale}, rows, kVec<T>)
                             : vector_ok({&x, &mean, &log_scale, &out}, rows, kVec<T>);
  const Grid g = make_grid(rows, cols, kVec<T>, reduce, workspace_numel);
  GaussianNllParams<T> p{};
  p.x = reinterpret_cast<const T*>(x.ptr);
  p.mean = reinterpret_cast<const T*>(mean.ptr);
  p.log_scale = reinterpret_cast<const T*>(log_scale.ptr);
  p.loss = reduce ? nullptr : reinterpret_cast<float*>(out.ptr);
  p.partials = reduce ? reinterpret_cast<float*>(workspace) : nullptr;
  p.rows = rows;
  p.cols = cols;
  p.tiles_per_row = g.tiles_per_row;
  p.num_tiles = g.num_tiles;
  p.stride_x_row = x.stride_row;
  p.stride_x_col = x.stride_col;
  p.stride_mean_row = mean.stride_row;
  p.stride_mean_col = mean.stride_col;
  p.stride_log_scale_row = log_scale.stride_row;
  p.stride_log_scale_col = log_scale.stride_col;
  p.stride_loss_row = out.stride_row;
  p.stride_loss_col = out.stride_col;
  p.log_scale_min = log_scale_min;
  detail::launch(pick_kernel<NllFwd<T>>(vector, reduce), dim3(g.blocks), dim3(kThreads), 0, stream, p,
                 "gaussian_nll_fwd kernel launch");
  if (reduce) {
    launch_sum_partials(p.partials, g.blocks, reinterpret_cast<float*>(out.ptr),
                        reduction_scale(reduction, rows, cols), stream);
  }
}

template <typename T>
void run_nll_bwd(const View2D& grad, const View2D& x, const View2D& mean, const View2D& log_scale,
                 const View2D& dx, const View2D& dmean, const View2D& dlog_scale, int64_t rows, int64_t cols,
                 float log_scale_min, int reduction, cudaStream_t stream) {
  const bool reduce = reduction != kReduceNone;
  const bool vector =
      reduce ? vector_ok({&x, &mean, &log_scale, &dx, &dmean, &dlog_scale}, rows, kVec<T>)
             : vector_ok({&grad, &x, &mean, &log_scale, &dx, &dmean, &dlog_scale}, rows, kVec<T>);
  const Grid g = make_grid(rows, cols, kVec<T>, false, 0);
  GaussianNllParams<T> p{};
  p.x = reinterpret_cast<const T*>(x.ptr);
  p.mean = reinterpret_cast<const T*>(mean.ptr);
  p.log_scale = reinterpret_cast<const T*>(log_scale.ptr);
  p.grad = reinterpret_cast<const float*>(grad.ptr);
  p.dx = reinterpret_cast<T*>(dx.ptr);
  p.dmean = reinterpret_cast<T*>(dmean.ptr);
  p.dlog_scale = reinterpret_cast<T*>(dlog_scale.ptr);
  p.rows = rows;
  p.cols = cols;
  p.tiles_per_row = g.tiles_per_row;
  p.num_tiles = g.num_tiles;
  p.stride_x_row = x.stride_row;
  p.stride_x_col = x.stride_col;
  p.stride_mean_row = mean.stride_row;
  p.stride_mean_col = mean.stride_col;
  p.stride_log_scale_row = log_scale.stride_row;
  p.stride_log_scale_col = log_scale.stride_col;
  p.stride_grad_row = reduce ? 0 : grad.stride_row;
  p.stride_grad_col = reduce ? 0 : grad.stride_col;
  p.stride_dx_row = dx.stride_row;
  p.stride_dx_col = dx.stride_col;
  p.stride_dmean_row = dmean.stride_row;
  p.stride_dmean_col = dmean.stride_col;
  p.stride_dlog_scale_row = dlog_scale.stride_row;
  p.stride_dlog_scale_col = dlog_scale.stride_col;
  p.log_scale_min = log_scale_min;
  p.grad_scale = static_cast<float>(reduction_scale(reduction, rows, cols));
  detail::launch(pick_kernel<NllBwd<T>>(vector, reduce), dim3(g.blocks), dim3(kThreads), 0, stream, p,
                 "gaussian_nll_bwd kernel launch");
}

// ---- gaussian_kl ----

template <typename T>
void run_kl_fwd(const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p, const View2D& log_scale_p,
                const View2D& out, std::uintptr_t workspace, int64_t workspace_numel, int64_t rows, int64_t cols,
                float log_scale_min, float reg_weight, int reduction, cudaStream_t stream, bool reg_raw) {
  const bool reduce = reduction != kReduceNone;
  const bool vector = reduce ? vector_ok({&mean_q, &log_scale_q, &mean_p, &log_scale_p}, rows, kVec<T>)
                             : vector_ok({&mean_q, &log_scale_q, &mean_p, &log_scale_p, &out}, rows, kVec<T>);
  const Grid g = make_grid(rows, cols, kVec<T>, reduce, workspace_numel);
  GaussianKlParams<T> p{};
  p.mean_q = reinterpret_cast<const T*>(mean_q.ptr);
  p.log_scale_q = reinterpret_cast<const T*>(log_scale_q.ptr);
  p.mean_p = reinterpret_cast<const T*>(mean_p.ptr);
  p.log_scale_p = reinterpret_cast<const T*>(log_scale_p.ptr);
  p.loss = reduce ? nullptr : reinterpret_cast<float*>(out.ptr);
  p.partials = reduce ? reinterpret_cast<float*>(workspace) : nullptr;
  p.rows = rows;
  p.cols = cols;
  p.tiles_per_row = g.tiles_per_row;
  p.num_tiles = g.num_tiles;
  p.stride_mean_q_row = mean_q.stride_row;
  p.stride_mean_q_col = mean_q.stride_col;
  p.stride_log_scale_q_row = log_scale_q.stride_row;
  p.stride_log_scale_q_col = log_scale_q.stride_col;
  p.stride_mean_p_row = mean_p.stride_row;
  p.stride_mean_p_col = mean_p.stride_col;
  p.stride_log_scale_p_row = log_scale_p.stride_row;
  p.stride_log_scale_p_col = log_scale_p.stride_col;
  p.stride_loss_row = out.stride_row;
  p.stride_loss_col = out.stride_col;
  p.log_scale_min = log_scale_min;
  p.reg_weight = reg_weight;
  p.reg_raw = reg_raw;
  detail::launch(pick_kernel<KlFwd<T>>(vector, reduce), dim3(g.blocks), dim3(kThreads), 0, stream, p,
                 "gaussian_kl_fwd kernel launch");
  if (reduce) {
    launch_sum_partials(p.partials, g.blocks, reinterpret_cast<float*>(out.ptr),
                        reduction_scale(reduction, rows, cols), stream);
  }
}

template <typename T>
void run_kl_bwd(const View2D& grad, const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p,
                const View2D& log_scale_p, const View2D& dmean_q, const View2D& dlog_scale_q, const View2D& dmean_p,
                const View2D& dlog_scale_p, int64_t rows, int64_t cols, float log_scale_min, float reg_weight,
                int reduction, cudaStream_t stream, bool reg_raw) {
  const bool reduce = reduction != kReduceNone;
  const bool vector =
      reduce ? vector_ok({&mean_q, &log_scale_q, &mean_p, &log_scale_p, &dmean_q, &dlog_scale_q, &dmean_p,
                          &dlog_scale_p},
                         rows, kVec<T>)
             : vector_ok({&grad, &mean_q, &log_scale_q, &mean_p, &log_scale_p, &dmean_q, &dlog_scale_q, &dmean_p,
                          &dlog_scale_p},
                         rows, kVec<T>);
  const Grid g = make_grid(rows, cols, kVec<T>, false, 0);
  GaussianKlParams<T> p{};
  p.mean_q = reinterpret_cast<const T*>(mean_q.ptr);
  p.log_scale_q = reinterpret_cast<const T*>(log_scale_q.ptr);
  p.mean_p = reinterpret_cast<const T*>(mean_p.ptr);
  p.log_scale_p = reinterpret_cast<const T*>(log_scale_p.ptr);
  p.grad = reinterpret_cast<const float*>(grad.ptr);
  p.dmean_q = reinterpret_cast<T*>(dmean_q.ptr);
  p.dlog_scale_q = reinterpret_cast<T*>(dlog_scale_q.ptr);
  p.dmean_p = reinterpret_cast<T*>(dmean_p.ptr);
  p.dlog_scale_p = reinterpret_cast<T*>(dlog_scale_p.ptr);
  p.rows = rows;
  p.cols = cols;
  p.tiles_per_row = g.tiles_per_row;
  p.num_tiles = g.num_tiles;
  p.stride_mean_q_row = mean_q.stride_row;
  p.stride_mean_q_col = mean_q.stride_col;
  p.stride_log_scale_q_row = log_scale_q.stride_row;
  p.stride_log_scale_q_col = log_scale_q.stride_col;
  p.stride_mean_p_row = mean_p.stride_row;
  p.stride_mean_p_col = mean_p.stride_col;
  p.stride_log_scale_p_row = log_scale_p.stride_row;
  p.stride_log_scale_p_col = log_scale_p.stride_col;
  p.stride_grad_row = reduce ? 0 : grad.stride_row;
  p.stride_grad_col = reduce ? 0 : grad.stride_col;
  p.stride_dmean_q_row = dmean_q.stride_row;
  p.stride_dmean_q_col = dmean_q.stride_col;
  p.stride_dlog_scale_q_row = dlog_scale_q.stride_row;
  p.stride_dlog_scale_q_col = dlog_scale_q.stride_col;
  p.stride_dmean_p_row = dmean_p.stride_row;
  p.stride_dmean_p_col = dmean_p.stride_col;
  p.stride_dlog_scale_p_row = dlog_scale_p.stride_row;
  p.stride_dlog_scale_p_col = dlog_scale_p.stride_col;
  p.log_scale_min = log_scale_min;
  p.reg_weight = reg_weight;
  p.reg_raw = reg_raw;
  p.grad_scale = static_cast<float>(reduction_scale(reduction, rows, cols));
  detail::launch(pick_kernel<KlBwd<T>>(vector, reduce), dim3(g.blocks), dim3(kThreads), 0, stream, p,
                 "gaussian_kl_bwd kernel launch");
}

void check_reduce_output(int reduction, std::uintptr_t workspace, int64_t workspace_numel, const char* op) {
  if (reduction == kReduceNone) return;
  check_arg(workspace != 0, std::string(op) + ": null workspace pointer");
  check_arg(workspace % 4 == 0, std::string(op) + ": workspace must be float32-aligned");
  check_arg(workspace_numel >= 1, std::string(op) + ": workspace must hold at least one float32 (" +
                                      std::to_string(kMaxPartials) + " recommended)");
}

void check_floats(float log_scale_min, float reg_weight, const char* op) {
  check_arg(std::isfinite(log_scale_min), std::string(op) + ": log_scale_min must be finite");
  check_arg(std::isfinite(reg_weight), std::string(op) + ": reg_weight must be finite");
}

}  // namespace

#define CLARINET_DISPATCH_DTYPE(dtype, T, ...)      \
  switch (dtype) {                                  \
    case kFloat32: {                                \
      using T = float;                              \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
    case kFloat16: {                                \
      using T = __half;                             \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
    default: {                                      \
      using T = __nv_bfloat16;                      \
      __VA_ARGS__;                                  \
      break;                                        \
    }                                               \
  }

void gaussian_nll_fwd(const View2D& x, const View2D& mean, const View2D& log_scale, const View2D& out,
                      std::uintptr_t workspace, int64_t workspace_numel, int64_t rows, int64_t cols,
                      float log_scale_min, int reduction, const LaunchContext& ctx) {
  const char* op = "gaussian_nll_fwd";
  check_common(rows, cols, reduction, ctx, op);
  check_view(x, "gaussian_nll_fwd: x");
  check_view(mean, "gaussian_nll_fwd: mean");
  check_view(log_scale, "gaussian_nll_fwd: log_scale");
  check_view(out, "gaussian_nll_fwd: out");
  check_reduce_output(reduction, workspace, workspace_numel, op);
  check_floats(log_scale_min, 0.f, op);
  detail::DeviceGuard guard(ctx.device);
  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  CLARINET_DISPATCH_DTYPE(ctx.dtype, T,
                          run_nll_fwd<T>(x, mean, log_scale, out, workspace, workspace_numel, rows, cols,
                                         log_scale_min, reduction, stream))
}

void gaussian_nll_bwd(const View2D& grad, const View2D& x, const View2D& mean, const View2D& log_scale,
                      const View2D& dx, const View2D& dmean, const View2D& dlog_scale, int64_t rows, int64_t cols,
                      float log_scale_min, int reduction, const LaunchContext& ctx) {
  const char* op = "gaussian_nll_bwd";
  check_common(rows, cols, reduction, ctx, op);
  check_view(grad, "gaussian_nll_bwd: grad");
  check_view(x, "gaussian_nll_bwd: x");
  check_view(mean, "gaussian_nll_bwd: mean");
  check_view(log_scale, "gaussian_nll_bwd: log_scale");
  check_view(dx, "gaussian_nll_bwd: dx");
  check_view(dmean, "gaussian_nll_bwd: dmean");
  check_view(dlog_scale, "gaussian_nll_bwd: dlog_scale");
  check_arg(grad.ptr % 4 == 0, "gaussian_nll_bwd: grad must be float32-aligned");
  check_floats(log_scale_min, 0.f, op);
  detail::DeviceGuard guard(ctx.device);
  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  CLARINET_DISPATCH_DTYPE(ctx.dtype, T,
                          run_nll_bwd<T>(grad, x, mean, log_scale, dx, dmean, dlog_scale, rows, cols, log_scale_min,
                                         reduction, stream))
}

void gaussian_kl_fwd(const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p,
                     const View2D& log_scale_p, const View2D& out, std::uintptr_t workspace,
                     int64_t workspace_numel, int64_t rows, int64_t cols, float log_scale_min, float reg_weight,
                     int reduction, const LaunchContext& ctx, bool reg_raw) {
  const char* op = "gaussian_kl_fwd";
  check_common(rows, cols, reduction, ctx, op);
  check_view(mean_q, "gaussian_kl_fwd: mean_q");
  check_view(log_scale_q, "gaussian_kl_fwd: log_scale_q");
  check_view(mean_p, "gaussian_kl_fwd: mean_p");
  check_view(log_scale_p, "gaussian_kl_fwd: log_scale_p");
  check_view(out, "gaussian_kl_fwd: out");
  check_reduce_output(reduction, workspace, workspace_numel, op);
  check_floats(log_scale_min, reg_weight, op);
  detail::DeviceGuard guard(ctx.device);
  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  CLARINET_DISPATCH_DTYPE(ctx.dtype, T,
                          run_kl_fwd<T>(mean_q, log_scale_q, mean_p, log_scale_p, out, workspace, workspace_numel,
                                        rows, cols, log_scale_min, reg_weight, reduction, stream, reg_raw))
}

void gaussian_kl_bwd(const View2D& grad, const View2D& mean_q, const View2D& log_scale_q, const View2D& mean_p,
                     const View2D& log_scale_p, const View2D& dmean_q, const View2D& dlog_scale_q,
                     const View2D& dmean_p, const View2D& dlog_scale_p, int64_t rows, int64_t cols,
                     float log_scale_min, float reg_weight, int reduction, const LaunchContext& ctx,
                     bool reg_raw) {
  const char* op = "gaussian_kl_bwd";
  check_common(rows, cols, reduction, ctx, op);
  check_view(grad, "gaussian_kl_bwd: grad");
  check_view(mean_q, "gaussian_kl_bwd: mean_q");
  check_view(log_scale_q, "gaussian_kl_bwd: log_scale_q");
  check_view(mean_p, "gaussian_kl_bwd: mean_p");
  check_view(log_scale_p, "gaussian_kl_bwd: log_scale_p");
  check_view(dmean_q, "gaussian_kl_bwd: dmean_q");
  check_view(dlog_scale_q, "gaussian_kl_bwd: dlog_scale_q");
  check_view(dmean_p, "gaussian_kl_bwd: dmean_p");
  check_view(dlog_scale_p, "gaussian_kl_bwd: dlog_scale_p");
  check_arg(grad.ptr % 4 == 0, "gaussian_kl_bwd: grad must be float32-aligned");
  check_floats(log_scale_min, reg_weight, op);
  detail::DeviceGuard guard(ctx.device);
  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  CLARINET_DISPATCH_DTYPE(ctx.dtype, T,
                          run_kl_bwd<T>(grad, mean_q, log_scale_q, mean_p, log_scale_p, dmean_q, dlog_scale_q,
                                        dmean_p, dlog_scale_p, rows, cols, log_scale_min, reg_weight, reduction,
                                        stream, reg_raw))
}

#undef CLARINET_DISPATCH_DTYPE

}  // namespace clarinet_cuda
