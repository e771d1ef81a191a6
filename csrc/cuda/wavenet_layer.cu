// Fused WaveNet residual layer, inference forward (reference: wavenet_layer_ref in
// clarinet/ops/wavenet_layer.py):
//
//   a[b,g,t] = b_dil[g] + sum_{k,r} w_dil[g,r,k] x[b,r,t+off_k] + sum_c w_cond[g,c] h[b,c,t]
//   z        = tanh(a[:, :G2]) * sigmoid(a[:, G2:])
//   skip     = w_skip z + b_skip
//   out      = (x + w_res z + b_res) * sqrt(0.5)
//
// One block per (time tile of TT samples, batch element); nothing of size (B, G, T)
// touches global memory. Written as two GEMMs over the tile:
//   GEMM1  A1 (2*G2p x TT) = W1 (2*G2p x K1p) . X (K1p x TT)
//          X stacks the K shifted copies of the x tile (row k*R + r holds x[b, r, t + off_k],
//          zero outside [0, T)) and the h tile (rows K*R + c), zero-padded to K1p rows.
//   gate   Z (G2p x TT) = tanh(A1[:G2p] + b1) * sigmoid(A1[G2p:] + b1)   (in shared memory)
//   GEMM2  Y (Rp+Sp x TT) = W2 (Rp+Sp x G2p) . Z, then the epilogue adds biases (and the
//          residual, read back from the tap with offset 0 of X) and stores with bounds checks
//          and arbitrary output strides.
// W1, W2, b1, b2 are packed by clarinet/_cuda_ops.py (layout in clarinet_cuda.h).
//
// float16 / bfloat16: tensor cores through nvcuda::wmma 16x16x16 fragments, float32
//   accumulators. Each warp owns a 16-row strip and NTW 16-column tiles; A fragments are
//   read straight from the packed weights in global memory (small, L1/L2-resident), B from
//   shared memory. Accumulators go through a per-warp 16x16 float scratch tile, where the
//   row and column of each element are known, for the gate and the epilogue.
// float32: the same structure in plain SIMT float math (no TF32: float32 results must
//   match a float32 reference to 1e-5).
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "clarinet_cuda.h"

namespace clarinet_cuda {
namespace {

using detail::check_arg;
using detail::from_float;
using detail::to_float;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr float kSqrtHalf = 0.707106781186547524f;
constexpr int kPad16 = 16;  // packed dims are padded to multiples of the 16x16x16 fragment

template <typename T>
struct WavenetLayerParams {
  // pointers
  const T* __restrict__ x;       // (B, R, T)
  const T* __restrict__ h;       // (B, C, T); null when C == 0
  const T* __restrict__ w1;      // packed (2*G2p, K1p)
  const float* __restrict__ b1;  // packed (2*G2p,)
  const T* __restrict__ w2;      // packed (Rp + Sp, G2p)
  const float* __restrict__ b2;  // packed (Rp + Sp,)
  T* __restrict__ out;           // (B, R, T)
  T* __restrict__ skip;          // (B, S, T)
  // sizes
  int R, C, S, K, G2;   // residual, conditioning, skip channels; taps; half the gate channels
  int K1, K1p;          // K*R + C, padded to 16
  int G2p, Rp, Sp;      // G2, R, S padded to 16
  int64_t time;         // T
  // strides (elements)
  int64_t stride_x_b, stride_x_r, stride_x_t;
  int64_t stride_h_b, stride_h_c, stride_h_t;
  int64_t stride_out_b, stride_out_r, stride_out_t;
  int64_t stride_skip_b, stride_skip_s, stride_skip_t;
  // convolution: tap k reads x[t + off0 + k * dilation]; tap k_res has offset 0 (the residual)
  int64_t off0, dilation;
  int k_res;
};

__device__ __forceinline__ float sigmoidf_(float v) { return 1.f / (1.f + expf(-v)); }

__device__ __forceinline__ float gate(float a_tanh, float a_sigmoid) {
  return tanhf(a_tanh) * sigmoidf_(a_sigmoid);
}

// Fills X (K1p rows of LD elements; columns [0, TT) used) for time tile t0 of batch element b.
template <typename T, int TT, int LD>
__device__ __forceinline__ void stage_inputs(const WavenetLayerParams<T>& p, T* __restrict__ xs, int b,
                                             int64_t t0) {
  const int KR = p.K * p.R;
  const T* xb = p.x + int64_t(b) * p.stride_x_b;
  const T* hb = p.C > 0 ? p.h + int64_t(b) * p.stride_h_b : nullptr;
  const T zero = from_float<T>(0.f);
  const int total = p.K1p * TT;
#pragma unroll 4
  for (int i = threadIdx.x; i < total; i += kThreads) {
    const int j = i / TT;  // row of X
    const int n = i - j * TT;
    const int64_t t = t0 + n;
    T v = zero;
    if (j < KR) {
      const int k = j / p.R;
      const int r = j - k * p.R;
      const int64_t ts = t + p.off0 + k * p.dilation;
      if (ts >= 0 && ts < p.time) v = xb[r * p.stride_x_r + ts * p.stride_x_t];
    } else if (j < p.K1) {
      const int c = j - KR;
      if (t < p.time) v = hb[c * p.stride_h_c + t * p.stride_h_t];
    }
    xs[j * LD + n] = v;
  }
}

// Epilogue for one output element: row m of the packed W2 (residual rows [0, Rp), skip rows
// [Rp, Rp + Sp)), tile column nc, time t; acc is the GEMM2 sum without bias.
template <typename T, int LD>
__device__ __forceinline__ void store_output(const WavenetLayerParams<T>& p, const T* __restrict__ xs, int b, int m,
                                             int nc, int64_t t, float acc) {
  if (t >= p.time) return;
  const float v = acc + p.b2[m];
  if (m < p.Rp) {
    if (m < p.R) {
      const float xr = to_float(xs[(p.k_res * p.R + m) * LD + nc]);  // x[b, m, t], staged exactly
      p.out[int64_t(b) * p.stride_out_b + m * p.stride_out_r + t * p.stride_out_t] =
          from_float<T>((v + xr) * kSqrtHalf);
    }
  } else {
    const int s = m - p.Rp;
    if (s < p.S) p.skip[int64_t(b) * p.stride_skip_b + s * p.stride_skip_s + t * p.stride_skip_t] = from_float<T>(v);
  }
}

// ---- tensor-core kernel (float16 / bfloat16) ------------------------------------------

template <typename T, int TT>
__global__ void __launch_bounds__(kThreads) wavenet_layer_tc_kernel(const WavenetLayerParams<T> p) {
  using namespace nvcuda;
  constexpr int LD = TT + 8;  // +16 bytes per row: fragment rows land in different banks
  constexpr int NT = TT / 16;            // 16-column tiles per time tile
  constexpr int NTW = NT < 2 ? NT : 2;   // column tiles per warp task
  constexpr int NG = NT / NTW;           // column groups
  static_assert(TT % 16 == 0 && NT % NTW == 0, "time tile must be a multiple of 16");
  using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
  using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
  using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

  // shared memory: X (K1p x LD) | Z (G2p x LD) | per-warp 16x16 float scratch
  // (every region starts at a multiple of 32 bytes: K1p and G2p are multiples of 16)
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* xs = reinterpret_cast<T*>(smem_raw);
  T* zs = xs + p.K1p * LD;
  float* scratch = reinterpret_cast<float*>(zs + p.G2p * LD);

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int b = blockIdx.y;
  const int64_t t0 = int64_t(blockIdx.x) * TT;
  float* scr = scratch + warp * 256;
  // a lane reads scratch rows sr + 2e (e < 8) of column sc: 16 lanes per row, conflict-free
  const int sr = lane >> 4;
  const int sc = lane & 15;

  stage_inputs<T, TT, LD>(p, xs, b, t0);
  __syncthreads();

  // GEMM1 + gate. Task = (16-row strip m0 of the tanh half, and the same strip of the
  // sigmoid half; NTW column tiles from n0).
  const int strips1 = p.G2p / 16;
  for (int task = warp; task < strips1 * NG; task += kWarps) {
    const int m0 = (task / NG) * 16;
    const int n0 = (task % NG) * (NTW * 16);
    FragC acc_t[NTW], acc_s[NTW];
#pragma unroll
    for (int j = 0; j < NTW; ++j) {
      wmma::fill_fragment(acc_t[j], 0.f);
      wmma::fill_fragment(acc_s[j], 0.f);
    }
    const T* wt = p.w1 + int64_t(m0) * p.K1p;
    const T* ws = p.w1 + int64_t(m0 + p.G2p) * p.K1p;
    FragA a_t, a_s;
    wmma::load_matrix_sync(a_t, wt, p.K1p);
    wmma::load_matrix_sync(a_s, ws, p.K1p);
    for (int k0 = 0; k0 < p.K1p; k0 += 16) {
      // prefetch the next weight fragments (global memory) before this step's MMAs
      FragA next_t, next_s;
      const bool more = k0 + 16 < p.K1p;
      if (more) {
        wmma::load_matrix_sync(next_t, wt + k0 + 16, p.K1p);
        wmma::load_matrix_sync(next_s, ws + k0 + 16, p.K1p);
      }
#pragma unroll
      for (int j = 0; j < NTW; ++j) {
        FragB bx;
        wmma::load_matrix_sync(bx, xs + k0 * LD + n0 + j * 16, LD);
        wmma::mma_sync(acc_t[j], a_t, bx, acc_t[j]);
        wmma::mma_sync(acc_s[j], a_s, bx, acc_s[j]);
      }
      if (more) {
        a_t = next_t;
        a_s = next_s;
      }
    }
#pragma unroll
    for (int j = 0; j < NTW; ++j) {
      wmma::store_matrix_sync(scr, acc_t[j], 16, wmma::mem_row_major);
      __syncwarp();
      float a_tanh[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) a_tanh[e] = scr[(sr + 2 * e) * 16 + sc];
      __syncwarp();
      wmma::store_matrix_sync(scr, acc_s[j], 16, wmma::mem_row_major);
      __syncwarp();
      const int nc = n0 + j * 16 + sc;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int g = m0 + sr + 2 * e;
        const float a_sig = scr[(sr + 2 * e) * 16 + sc] + p.b1[p.G2p + g];
        zs[g * LD + nc] = from_float<T>(gate(a_tanh[e] + p.b1[g], a_sig));
      }
      __syncwarp();
    }
  }
  __syncthreads();

  // GEMM2 + epilogue. Task = (16-row strip m0 of W2, NTW column tiles from n0).
  const int strips2 = (p.Rp + p.Sp) / 16;
  for (int task = warp; task < strips2 * NG; task += kWarps) {
    const int m0 = (task / NG) * 16;
    const int n0 = (task % NG) * (NTW * 16);
    FragC acc[NTW];
#pragma unroll
    for (int j = 0; j < NTW; ++j) wmma::fill_fragment(acc[j], 0.f);
    const T* w = p.w2 + int64_t(m0) * p.G2p;
    FragA a;
    wmma::load_matrix_sync(a, w, p.G2p);
    for (int k0 = 0; k0 < p.G2p; k0 += 16) {
      FragA next;
      const bool more = k0 + 16 < p.G2p;
      if (more) wmma::load_matrix_sync(next, w + k0 + 16, p.G2p);
#pragma unroll
      for (int j = 0; j < NTW; ++j) {
        FragB bz;
        wmma::load_matrix_sync(bz, zs + k0 * LD + n0 + j * 16, LD);
        wmma::mma_sync(acc[j], a, bz, acc[j]);
      }
      if (more) a = next;
    }
#pragma unroll
    for (int j = 0; j < NTW; ++j) {
      wmma::store_matrix_sync(scr, acc[j], 16, wmma::mem_row_major);
      __syncwarp();
      const int nc = n0 + j * 16 + sc;
      const int64_t t = t0 + nc;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        store_output<T, LD>(p, xs, b, m0 + sr + 2 * e, nc, t, scr[(sr + 2 * e) * 16 + sc]);
      }
      __syncwarp();
    }
  }
}

// ---- SIMT kernel (float32) ---------------------------------------------------------------
// Thread (ty, tx) = (threadIdx.x / 16, threadIdx.x % 16) owns tile columns tx + 16 j (j < TT/16):
// a half-warp reads 16 consecutive floats of a shared-memory row, the two half-warps of a warp
// share weight rows' loads up to their row offset.

template <int TT>
__global__ void __launch_bounds__(kThreads) wavenet_layer_simt_kernel(const WavenetLayerParams<float> p) {
  constexpr int LD = TT;
  constexpr int CPT = TT / 16;  // columns per thread
  constexpr int MR1 = 2;        // gate rows per thread per pass (each a tanh and a sigmoid row)
  constexpr int MR2 = 4;        // output rows per thread per pass
  static_assert(TT % 16 == 0, "time tile must be a multiple of 16");

  extern __shared__ __align__(128) unsigned char smem_raw[];
  float* xs = reinterpret_cast<float*>(smem_raw);  // K1p x LD
  float* zs = xs + p.K1p * LD;                      // G2p x LD

  const int b = blockIdx.y;
  const int64_t t0 = int64_t(blockIdx.x) * TT;
  const int tx = threadIdx.x & 15;
  const int ty = threadIdx.x >> 4;

  stage_inputs<float, TT, LD>(p, xs, b, t0);
  __syncthreads();

  // GEMM1 + gate: rows g = gc + ty + 16 i
  for (int gc = 0; gc < p.G2p; gc += 16 * MR1) {
    float at[MR1][CPT], as[MR1][CPT];
    bool row_ok[MR1];
    const float* wt[MR1];
    const float* ws[MR1];
#pragma unroll
    for (int i = 0; i < MR1; ++i) {
      const int g = gc + ty + 16 * i;
      row_ok[i] = g < p.G2p;
      wt[i] = p.w1 + int64_t(row_ok[i] ? g : 0) * p.K1p;
      ws[i] = p.w1 + int64_t(row_ok[i] ? g + p.G2p : 0) * p.K1p;
#pragma unroll
      for (int j = 0; j < CPT; ++j) at[i][j] = as[i][j] = 0.f;
    }
#pragma unroll 4
    for (int k = 0; k < p.K1; ++k) {
      float xv[CPT];
#pragma unroll
      for (int j = 0; j < CPT; ++j) xv[j] = xs[k * LD + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < MR1; ++i) {
        const float w_t = row_ok[i] ? wt[i][k] : 0.f;
        const float w_s = row_ok[i] ? ws[i][k] : 0.f;
#pragma unroll
        for (int j = 0; j < CPT; ++j) {
          at[i][j] = fmaf(w_t, xv[j], at[i][j]);
          as[i][j] = fmaf(w_s, xv[j], as[i][j]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < MR1; ++i) {
      if (!row_ok[i]) continue;
      const int g = gc + ty + 16 * i;
      const float bt = p.b1[g];
      const float bs = p.b1[p.G2p + g];
#pragma unroll
      for (int j = 0; j < CPT; ++j) zs[g * LD + tx + 16 * j] = gate(at[i][j] + bt, as[i][j] + bs);
    }
  }
  __syncthreads();

  // GEMM2 + epilogue: rows m = mc + ty + 16 i of the packed W2; only the G2 real columns
  const int M2 = p.Rp + p.Sp;
  for (int mc = 0; mc < M2; mc += 16 * MR2) {
    float acc[MR2][CPT];
    bool row_ok[MR2];
    const float* w[MR2];
#pragma unroll
    for (int i = 0; i < MR2; ++i) {
      const int m = mc + ty + 16 * i;
      row_ok[i] = m < M2;
      w[i] = p.w2 + int64_t(row_ok[i] ? m : 0) * p.G2p;
#pragma unroll
      for (int j = 0; j < CPT; ++j) acc[i][j] = 0.f;
    }
#pragma unroll 4
    for (int k = 0; k < p.G2; ++k) {
      float zv[CPT];
#pragma unroll
      for (int j = 0; j < CPT; ++j) zv[j] = zs[k * LD + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < MR2; ++i) {
        const float wv = row_ok[i] ? w[i][k] : 0.f;
#pragma unroll
        for (int j = 0; j < CPT; ++j) acc[i][j] = fmaf(wv, zv[j], acc[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < MR2; ++i) {
      if (!row_ok[i]) continue;
      const int m = mc + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < CPT; ++j) {
        const int nc = tx + 16 * j;
        store_output<float, LD>(p, xs, b, m, nc, t0 + nc, acc[i][j]);
      }
    }
  }
}

// ---- host side ------------------------------------------------------------------------------

int64_t round_up16(int64_t v) { return (v + kPad16 - 1) / kPad16 * kPad16; }

int64_t smem_bytes(int dtype, int64_t k1p, int64_t g2p, int tile_t) {
  if (dtype == kFloat32) return (k1p + g2p) * tile_t * int64_t(sizeof(float));
  return (k1p + g2p) * (tile_t + 8) * 2 + int64_t(kWarps) * 256 * int64_t(sizeof(float));
}

template <typename T>
WavenetLayerParams<T> make_params(const WavenetLayerArgs& a, int64_t k1, int64_t k1p, int64_t g2p, int64_t rp,
                                  int64_t sp) {
  WavenetLayerParams<T> p{};
  p.x = reinterpret_cast<const T*>(a.x);
  p.h = a.cond_channels > 0 ? reinterpret_cast<const T*>(a.h) : nullptr;
  p.w1 = reinterpret_cast<const T*>(a.w1);
  p.b1 = reinterpret_cast<const float*>(a.b1);
  p.w2 = reinterpret_cast<const T*>(a.w2);
  p.b2 = reinterpret_cast<const float*>(a.b2);
  p.out = reinterpret_cast<T*>(a.out);
  p.skip = reinterpret_cast<T*>(a.skip);
  p.R = static_cast<int>(a.res_channels);
  p.C = static_cast<int>(a.cond_channels);
  p.S = static_cast<int>(a.skip_channels);
  p.K = static_cast<int>(a.kernel_size);
  p.G2 = static_cast<int>(a.half_gate_channels);
  p.K1 = static_cast<int>(k1);
  p.K1p = static_cast<int>(k1p);
  p.G2p = static_cast<int>(g2p);
  p.Rp = static_cast<int>(rp);
  p.Sp = static_cast<int>(sp);
  p.time = a.time;
  p.stride_x_b = a.stride_x_b;
  p.stride_x_r = a.stride_x_r;
  p.stride_x_t = a.stride_x_t;
  p.stride_h_b = a.stride_h_b;
  p.stride_h_c = a.stride_h_c;
  p.stride_h_t = a.stride_h_t;
  p.stride_out_b = a.stride_out_b;
  p.stride_out_r = a.stride_out_r;
  p.stride_out_t = a.stride_out_t;
  p.stride_skip_b = a.stride_skip_b;
  p.stride_skip_s = a.stride_skip_s;
  p.stride_skip_t = a.stride_skip_t;
  p.dilation = a.dilation;
  if (a.causal) {
    p.off0 = -(a.kernel_size - 1) * a.dilation;
    p.k_res = static_cast<int>(a.kernel_size - 1);
  } else {
    p.off0 = -((a.kernel_size - 1) / 2) * a.dilation;
    p.k_res = static_cast<int>((a.kernel_size - 1) / 2);
  }
  return p;
}

template <typename Kernel, typename P>
void launch_layer(Kernel kernel, const P& p, int tile_t, int64_t smem, int64_t batch, int64_t time,
                  cudaStream_t stream) {
  if (smem > 48 * 1024) {
    detail::check_cuda(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                       "wavenet_layer_fwd: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  }
  const dim3 grid(static_cast<unsigned>((time + tile_t - 1) / tile_t), static_cast<unsigned>(batch));
  detail::launch(kernel, grid, dim3(kThreads), static_cast<std::size_t>(smem), stream, p,
                 "wavenet_layer_fwd kernel launch");
}

}  // namespace

std::tuple<int64_t, int64_t, int64_t, int64_t> wavenet_layer_packed_dims(int64_t res_channels, int64_t cond_channels,
                                                                         int64_t skip_channels,
                                                                         int64_t half_gate_channels,
                                                                         int64_t kernel_size) {
  check_arg(res_channels >= 1 && skip_channels >= 1 && half_gate_channels >= 1 && kernel_size >= 1 &&
                cond_channels >= 0,
            "wavenet_layer: channels and kernel size must be positive (R=" + std::to_string(res_channels) +
                ", C=" + std::to_string(cond_channels) + ", S=" + std::to_string(skip_channels) +
                ", G/2=" + std::to_string(half_gate_channels) + ", K=" + std::to_string(kernel_size) + ")");
  constexpr int64_t kMaxDim = int64_t(1) << 20;  // far beyond any shared-memory budget; keeps int32 math exact
  check_arg(res_channels <= kMaxDim && cond_channels <= kMaxDim && skip_channels <= kMaxDim &&
                half_gate_channels <= kMaxDim && kernel_size <= kMaxDim && kernel_size * res_channels <= kMaxDim,
            "wavenet_layer: channel counts or kernel size too large");
  const int64_t k1 = kernel_size * res_channels + cond_channels;
  return {round_up16(k1), round_up16(half_gate_channels), round_up16(res_channels), round_up16(skip_channels)};
}

int64_t wavenet_layer_smem_bytes(int dtype, int64_t k1_padded, int64_t g2_padded, int tile_t) {
  check_arg(dtype == kFloat32 || dtype == kFloat16 || dtype == kBFloat16,
            "wavenet_layer_smem_bytes: dtype code must be 0, 1 or 2");
  check_arg(tile_t == 32 || tile_t == 64, "wavenet_layer_smem_bytes: tile_t must be 32 or 64");
  check_arg(k1_padded >= 0 && g2_padded >= 0, "wavenet_layer_smem_bytes: negative sizes");
  return smem_bytes(dtype, k1_padded, g2_padded, tile_t);
}

void wavenet_layer_fwd(const WavenetLayerArgs& a, const LaunchContext& ctx) {
  const std::string op = "wavenet_layer_fwd: ";
  check_arg(ctx.dtype == kFloat32 || ctx.dtype == kFloat16 || ctx.dtype == kBFloat16,
            op + "dtype code must be 0 (float32), 1 (float16) or 2 (bfloat16), got " + std::to_string(ctx.dtype));
  check_arg(ctx.device >= 0, op + "negative device index");
  const auto dims = wavenet_layer_packed_dims(a.res_channels, a.cond_channels, a.skip_channels,
                                              a.half_gate_channels, a.kernel_size);
  const int64_t k1p = std::get<0>(dims), g2p = std::get<1>(dims), rp = std::get<2>(dims), sp = std::get<3>(dims);
  const int64_t k1 = a.kernel_size * a.res_channels + a.cond_channels;
  check_arg(a.batch >= 1 && a.batch <= 65535, op + "batch must be in [1, 65535], got " + std::to_string(a.batch));
  check_arg(a.time >= 1, op + "time must be positive, got " + std::to_string(a.time));
  check_arg(a.dilation >= 1, op + "dilation must be positive, got " + std::to_string(a.dilation));
  check_arg(a.dilation <= (int64_t(1) << 40) / a.kernel_size, op + "dilation too large");
  check_arg(a.causal || a.kernel_size % 2 == 1, op + "a non-causal layer needs an odd kernel size, got " +
                                                    std::to_string(a.kernel_size));
  check_arg(a.time / 32 < int64_t(1) << 31, op + "time too long for the grid");
  check_arg(a.x != 0 && a.w1 != 0 && a.b1 != 0 && a.w2 != 0 && a.b2 != 0 && a.out != 0 && a.skip != 0,
            op + "null device pointer");
  check_arg((a.cond_channels > 0) == (a.h != 0), op + "h must be given exactly when cond_channels > 0");
  check_arg(a.w1_numel == 2 * g2p * k1p, op + "packed w1 must have 2*G2p*K1p = " + std::to_string(2 * g2p * k1p) +
                                             " elements, got " + std::to_string(a.w1_numel));
  check_arg(a.b1_numel == 2 * g2p, op + "packed b1 must have 2*G2p = " + std::to_string(2 * g2p) +
                                       " elements, got " + std::to_string(a.b1_numel));
  check_arg(a.w2_numel == (rp + sp) * g2p, op + "packed w2 must have (Rp+Sp)*G2p = " +
                                               std::to_string((rp + sp) * g2p) + " elements, got " +
                                               std::to_string(a.w2_numel));
  check_arg(a.b2_numel == rp + sp, op + "packed b2 must have Rp+Sp = " + std::to_string(rp + sp) +
                                       " elements, got " + std::to_string(a.b2_numel));
  check_arg(a.w1 % 32 == 0 && a.w2 % 32 == 0, op + "packed weights must be 32-byte aligned");
  check_arg(a.b1 % 4 == 0 && a.b2 % 4 == 0, op + "packed biases must be float32-aligned");
  for (int64_t s : {a.stride_x_b, a.stride_x_r, a.stride_x_t, a.stride_h_b, a.stride_h_c, a.stride_h_t,
                    a.stride_out_b, a.stride_out_r, a.stride_out_t, a.stride_skip_b, a.stride_skip_s,
                    a.stride_skip_t}) {
    check_arg(s >= 0, op + "negative strides are not supported");
  }

  detail::DeviceGuard guard(ctx.device);
  int max_smem = 0;
  detail::check_cuda(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device),
                     "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  int tile_t = 64;
  int64_t smem = smem_bytes(ctx.dtype, k1p, g2p, 64);
  if (smem > max_smem) {
    tile_t = 32;
    smem = smem_bytes(ctx.dtype, k1p, g2p, 32);
  }
  check_arg(smem <= max_smem,
            op + "channels too large for one block's shared memory: K*R+C=" + std::to_string(k1) +
                " (padded " + std::to_string(k1p) + "), G/2=" + std::to_string(a.half_gate_channels) + " (padded " +
                std::to_string(g2p) + ") need " + std::to_string(smem) + " bytes at the smallest time tile (32, " +
                detail::dtype_name(ctx.dtype) + "), the device allows " + std::to_string(max_smem));

  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  switch (ctx.dtype) {
    case kFloat32: {
      const auto p = make_params<float>(a, k1, k1p, g2p, rp, sp);
      if (tile_t == 64) {
        launch_layer(&wavenet_layer_simt_kernel<64>, p, 64, smem, a.batch, a.time, stream);
      } else {
        launch_layer(&wavenet_layer_simt_kernel<32>, p, 32, smem, a.batch, a.time, stream);
      }
      break;
    }
    case kFloat16: {
      const auto p = make_params<__half>(a, k1, k1p, g2p, rp, sp);
      if (tile_t == 64) {
        launch_layer(&wavenet_layer_tc_kernel<__half, 64>, p, 64, smem, a.batch, a.time, stream);
      } else {
        launch_layer(&wavenet_layer_tc_kernel<__half, 32>, p, 32, smem, a.batch, a.time, stream);
      }
      break;
    }
    default: {
      const auto p = make_params<__nv_bfloat16>(a, k1, k1p, g2p, rp, sp);
      if (tile_t == 64) {
        launch_layer(&wavenet_layer_tc_kernel<__nv_bfloat16, 64>, p, 64, smem, a.batch, a.time, stream);
      } else {
        launch_layer(&wavenet_layer_tc_kernel<__nv_bfloat16, 32>, p, 32, smem, a.batch, a.time, stream);
      }
      break;
    }
  }
}

}  // namespace clarinet_cuda
