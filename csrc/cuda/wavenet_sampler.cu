// Incremental (autoregressive) sampling of a Gaussian WaveNet on the GPU: one persistent kernel per
// chunk of steps, weights on chip, activations exchanged through distributed shared memory (DSMEM)
// inside a thread-block cluster (Hopper, sm_90).
//
// Reference: clarinet.ops.wavenet_sample._StackStepper / incremental_sample (the same loop in C++:
// csrc/cpu/wavenet_sampler.cpp). Per step t and layer l, for each batch element:
//   a  = cond[l][t] + sum_k W_dil[k]^T x_l(t - (K-1-k) d_l)     (cond = w_cond h_t + b_dil)
//   z  = tanh(a[:G/2]) * sigmoid(a[G/2:])
//   rs = W_rs^T z + b_rs;  x_{l+1} = (x_l + rs[:R]) * sqrt(0.5);  skip += rs[R:]
// head: y = relu(skip * sqrt(1/layers)); y1 = relu(W1 y + b1); (mean, log_scale) = W2 y1 + b2;
// x_t = mean + exp(max(log_scale, log_scale_min)) * temperature * noise_t (or the forced audio).
//
// ---- Design ------------------------------------------------------------------------------------
// A cluster of N CTAs (N in {1, 2, 4, 8, 16}, 256 threads each) runs a group of up to BG batch
// elements through every step of the chunk. CTA j of the cluster owns gate pairs
// [j*g, (j+1)*g), g = ceil(G2 / N) (G2 = G/2), of every layer:
//   stage A  its 2g columns of W_dil (K*R x 2g: g tanh columns, then the matching g sigmoid
//            columns) against the full layer input (K-1 past taps + x_l, each R values), a
//            column-sum over the block (rows split across lanes and warps, shuffle + shared
//            reduction), plus the precomputed conditioning -> its g gate outputs z_j;
//   stage C  the partial product of its g rows of W_rs (plus one bias row, non-zero on CTA 0
//            only) with z_j: a partial residual (R values) written to its own shared-memory
//            exchange buffer, and a partial skip sum kept locally over all layers;
//   barrier  one cluster barrier (barrier.cluster arrive.release / wait.acquire) per layer;
//   then     every CTA reads the N partial residuals through DSMEM, in the same order (rank 0..N-1),
//            so every CTA holds the same x_{l+1} bit for bit, and goes on with the next layer.
// The head: partial skips exchanged like the residuals (after the last layer), each CTA computes
// ceil(S/N) columns of W1 and the partial W2 product of those columns, one more cluster barrier,
// and every CTA sums the N partial (mean, log_scale) pairs -> x_t. So L + 1 cluster barriers per
// step, three __syncthreads per layer, no grid-wide synchronisation and no launch per layer.
// Exchange buffers are double-buffered by a running phase counter: data written before barrier p
// is read after barrier p and before the reader arrives at barrier p+1; the writer's next use of
// the same buffer comes after barrier p+1.
//
// Past layer inputs (the dilated taps) live in a float32 ring buffer in global memory per batch
// element and layer (rows padded to Rp = R rounded up to 4, zeroed by the caller, which gives the
// reference's zero history). x_l(t) is written (each CTA a disjoint slice of channels, st.global.cg)
// when it is computed; the taps of layer l+1 are fetched with cp.async.cg (16-byte, L2 only: never
// a stale L1 line) into a double-buffered shared tap tile while layer l computes (those of layer 0
// of the next step while the head computes), and waited for before the barrier that ends the phase. A tap written by another CTA of the cluster was written at
// least one cluster barrier earlier (release/acquire at cluster scope covers global memory), and a
// slot is overwritten only after every CTA has passed the barrier that follows its last read.
//
// Conditioning: a separate tiled kernel computes cond = w_cond h + b_dil for the whole chunk and
// every layer (float32, B x chunk x layers*G; the host caps the chunk so this stays bounded, it
// never grows with T). The sampler prefetches the values of the next layer into registers while
// the current one computes.
//
// Weights that do not fit in shared memory: the resident layers are the first n_res; the others
// are read with plain loads from the packed global copy (L2-resident: it is read by every step),
// through the same code path (generic pointers). wavenet_sample_unsupported (clarinet/_cuda_ops.py)
// reports models beyond the kernel's shape limits (G/2 > 16*16, S > 16*32, > 64 layers) or GPUs
// without clusters.
//
// The second hand-off mechanism of the design (global-memory flags with release/acquire between
// CTAs of a plain grid, which lifts the 16-CTA cluster limit for the `teacher` preset) is not built:
// it would replace cluster.sync by per-layer counters (cuda::atomic_ref<int, thread_scope_device>
// fetch_add release by each producer, acquire spin by each consumer) and the DSMEM reads by
// ld.global.cg of the partials; everything else (packing, rings, conditioning) is shared.
//
// ---- Budget (per step; H100 SXM: 228 KB shared / SM, 227 KB per CTA opt-in) -----------------------
// teacher-small (20 layers, R=64, G=128, S=128, K=2, C=80):
//   stack weights 573,440 values (1.15 MB fp16, 2.29 MB fp32), cond weights 204,800 (not on chip:
//   the per-chunk projection), ~1.59 MFLOP per sample in all.
//   fp16: N=8, g=8: 7.4 KB per layer per CTA -> 156 KB per CTA with the head and buffers at batch
//   group 1 (183 KB at 8): all resident. fp32: N=16 (non-portable cluster), g=4: 7.8 KB per layer
//   -> 163 KB (190 KB at 8): all resident; on a GPU without 16-CTA clusters, N=8: 14 resident.
//   Global traffic per sample and stream: cond 10 KB (write + read), ring 5 KB written,
//   5 KB x N read (L2 only).
//   Predicted (not measured): 21 cluster barriers (~0.3-0.5 us each) + per layer ~0.4-0.6 us of
//   shared-memory math, reductions and DSMEM reads -> ~15-25 us per step -> 40-65 kHz per stream
//   at batch 1; a batch group of BG <= 8 costs about the same per step (weights are reused), and
//   16 clusters of 8 run side by side: batch 64 ~ 64 x 20-40 kHz ~ 1.3-2.6 M samples/s.
// teacher (R=128, G=256, S=128):
//   stack weights 1,966,080 values (3.93 MB fp16, 7.86 MB fp32), ~4.78 MFLOP per sample.
//   fp16: N=16, g=8: 12.5 KB per layer per CTA -> 250 KB > 227 KB: 17 layers resident at batch
//   group 1 (14 at 8), the rest streamed from L2 (~0.6-1.1 MB per step for the cluster); fp32:
//   N=16: 25 KB per layer -> 8 resident (7), 12 streamed (~5 MB per step from L2, latency-bound).
//   (With N=8 only: fp16 8 resident, fp32 4.) Ring: 1 MB float32 per batch element (0.5 MB small).
//   Predicted (not measured): fp16 ~25-35 us per step -> ~30-40 kHz; fp32 ~15-25 kHz.
// These rates are estimates from the structure above; nothing here has been run on a GPU yet.
//
// This file holds the device code (the kernels) and the typed launchers declared in
// wavenet_sampler.cuh; the layout, the plan and the launch loop are in wavenet_sampler_host.cu.
#include <cooperative_groups.h>

#include <cstdint>

#include "wavenet_sampler.cuh"

namespace clarinet_cuda {
namespace sampler {
namespace {

namespace cg = cooperative_groups;
using detail::to_float;

constexpr float kSqrtHalf = 0.707106781186547524f;

// ---- the persistent sampler --------------------------------------------------------------------

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

__device__ __forceinline__ int64_t mod_pos(int64_t a, int64_t m) {
  const int64_t r = a % m;
  return r < 0 ? r + m : r;
}

// acc[b] += sum over rows r = part, part + P, ... < nrows of W[r * ldw + c] * in[b * ld_in + r]
template <typename T, int BG>
__device__ __forceinline__ void colsum_rows(const T* W, int ldw, int nrows, const float* in, int ld_in, int c,
                                            int part, int P, float (&acc)[BG]) {
#pragma unroll 4
  for (int r = part; r < nrows; r += P) {
    const float w = to_float(W[static_cast<int64_t>(r) * ldw + c]);
#pragma unroll
    for (int b = 0; b < BG; ++b) acc[b] = fmaf(w, in[b * ld_in + r], acc[b]);
  }
}

// Sums acc over the 32/cw lanes of a column inside the warp; lanes < cw store the warp's sums to
// red[(warp * BG + b) * 32 + lane]. The caller synchronises the block before reading red.
template <int BG>
__device__ __forceinline__ void colsum_to_shared(float (&acc)[BG], int cw, int lane, int warp, float* red) {
  for (int off = cw; off < 32; off <<= 1) {
#pragma unroll
    for (int b = 0; b < BG; ++b) acc[b] += __shfl_xor_sync(0xffffffffu, acc[b], off);
  }
  if (lane < cw) {
#pragma unroll
    for (int b = 0; b < BG; ++b) red[(warp * BG + b) * 32 + lane] = acc[b];
  }
}

template <int BG>
__device__ __forceinline__ float colsum_total(const float* red, int b, int c) {
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < kSWarps; ++w) s += red[(w * BG + b) * 32 + c];
  return s;
}

// sum over the cluster's ranks (in rank order, so every CTA gets the same bits) of buf[idx]
__device__ __forceinline__ float cluster_sum(const cg::cluster_group& cluster, float* buf, int idx, int n) {
  float s = 0.f;
  for (int j = 0; j < n; ++j) s += cluster.map_shared_rank(buf, j)[idx];
  return s;
}

template <typename T, int BG>
__global__ void __launch_bounds__(kSThreads, 1) wavenet_sampler_kernel(const SamplerParams<T> p) {
  extern __shared__ __align__(16) unsigned char smem[];
  cg::cluster_group cluster = cg::this_cluster();
  const int N = static_cast<int>(cluster.num_blocks());
  const int rank = static_cast<int>(cluster.block_rank());
  const int64_t cluster_id = blockIdx.x / N;
  const int64_t n_clusters = gridDim.x / N;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  T* w_s = reinterpret_cast<T*>(smem + p.sm.w);
  float* xcur = reinterpret_cast<float*>(smem + p.sm.xcur);   // [BG][Rp]: x_l(t)
  float* tap = reinterpret_cast<float*>(smem + p.sm.tap);     // [2][K-1][BG][Rp]
  float* xch = reinterpret_cast<float*>(smem + p.sm.xch);     // [2][BG][XW]: read by the cluster
  float* skipacc = reinterpret_cast<float*>(smem + p.sm.skip);  // [BG][S]: this CTA's partial skips
  float* ybuf = reinterpret_cast<float*>(smem + p.sm.y);      // [BG][Sp]
  float* zbuf = reinterpret_cast<float*>(smem + p.sm.z);      // [BG][g+1]: z_j and the bias row's 1
  float* red = reinterpret_cast<float*>(smem + p.sm.red);     // [8][BG][32]
  float* w_in = reinterpret_cast<float*>(smem + p.sm.vec);    // [Rp]
  float* b_in = w_in + p.Rp;                                   // [Rp]
  float* b2 = b_in + p.Rp;                                     // [4]
  float* b1 = b2 + 4;                                          // [S1]
  float* xt_s = reinterpret_cast<float*>(smem + p.sm.xt);     // [BG]
  float* y1buf = reinterpret_cast<float*>(smem + p.sm.y1);    // [BG][S1]

  const int R = p.R, Rp = p.Rp, S = p.S, K = p.K, L = p.L, g = p.g, S1 = p.S1, XW = p.XW, G = p.G;
  const int RS = R + S;
  const int tap_buf = (K - 1) * BG * Rp;  // floats per tap buffer
  const T* w_rank = p.wpack + rank * p.rank_elems;

  // weights of the head and the resident layers -> shared memory (16-byte copies; the packed
  // regions are multiples of 16 bytes and the packed tensor is 16-byte aligned)
  {
    const int64_t n16 = (p.head_elems + static_cast<int64_t>(p.n_res) * p.layer_elems) * sizeof(T) / 16;
    const uint4* srcv = reinterpret_cast<const uint4*>(w_rank);
    uint4* dstv = reinterpret_cast<uint4*>(w_s);
    for (int64_t i = tid; i < n16; i += kSThreads) dstv[i] = __ldg(srcv + i);
    for (int i = tid; i < Rp; i += kSThreads) {
      w_in[i] = i < R ? p.fpack[i] : 0.f;
      b_in[i] = i < R ? p.fpack[R + i] : 0.f;
    }
    if (tid < 4) b2[tid] = tid < 2 ? p.fpack[2 * R + tid] : 0.f;
    for (int i = tid; i < S1; i += kSThreads) b1[i] = p.fpack[2 * R + 2 + rank * S1 + i];
    for (int i = tid; i < BG * (g + 1); i += kSThreads) zbuf[i] = (i % (g + 1) == g) ? 1.f : 0.f;
  }
  __syncthreads();
  cluster.sync();  // every CTA of the cluster runs before any DSMEM access

  // stage-A lane mapping: column c of 2g, row partition part of P
  const int nc_a = 2 * g;
  const int q_a = 32 / p.cw_a;
  const int c_a = lane & (p.cw_a - 1);
  const int part_a = warp * q_a + lane / p.cw_a;
  const int P_a = kSWarps * q_a;
  // head lane mapping: column c of S1
  const int q_h = 32 / p.cw_h;
  const int c_h = lane & (p.cw_h - 1);
  const int part_h = warp * q_h + lane / p.cw_h;
  const int P_h = kSWarps * q_h;

  int ph = 0;   // running cluster-barrier count: exchange buffer parity
  int use = 0;  // running layer count: tap buffer parity

  for (int64_t grp = cluster_id; grp < p.n_groups; grp += n_clusters) {
    const int64_t b0 = grp * p.bg;
    const int nb = static_cast<int>(p.batch - b0 < p.bg ? p.batch - b0 : p.bg);  // valid elements of the group

    // taps of layer l for step t -> tap buffer `buf` (rows of invalid elements stay zero)
    auto prefetch_taps = [&](int l, int64_t t, int buf) {
      const int d = p.dil[l];
      const int64_t Lr = static_cast<int64_t>(K - 1) * d;
      const int q4 = Rp / 4;
      const int n = (K - 1) * nb * q4;
      for (int i = tid; i < n; i += kSThreads) {
        const int k = i / (nb * q4);
        const int rem = i - k * nb * q4;
        const int b = rem / q4, q = rem - b * q4;
        const int64_t slot = mod_pos(p.clock0 + t - static_cast<int64_t>(K - 1 - k) * d, Lr);
        const float* gsrc = p.ring + (b0 + b) * p.ring_stride_b + p.ring_off[l] + slot * Rp + 4 * q;
        cp_async16(tap + buf * tap_buf + (k * BG + b) * Rp + 4 * q, gsrc);
      }
    };
    // x_l(t) (in xcur) -> its ring slot; each CTA writes the channels r with r % N == rank
    auto write_ring = [&](int l, int64_t t) {
      if (K < 2) return;
      const int64_t slot = (p.clock0 + t) % (static_cast<int64_t>(K - 1) * p.dil[l]);
      for (int i = tid; i < nb * R; i += kSThreads) {
        const int b = i / R, r = i - b * R;
        if (r % N == rank) __stcg(p.ring + (b0 + b) * p.ring_stride_b + p.ring_off[l] + slot * Rp + r, xcur[b * Rp + r]);
      }
    };

    // ---- group start: tap buffers zeroed, x_{t0-1} from the previous chunk's output, layer 0 taps
    for (int i = tid; i < 2 * tap_buf; i += kSThreads) tap[i] = 0.f;
    if (tid < BG) {
      const int b = tid;
      float xp = 0.f;
      if (b < nb) {
        if (p.t0 > 0) {
          xp = p.x_out[(b0 + b) * p.time + p.t0 - 1];
        } else if (p.prev != nullptr) {
          xp = p.prev[b0 + b];
        }
      }
      xt_s[b] = xp;
    }
    __syncthreads();
    for (int i = tid; i < BG * Rp; i += kSThreads) {
      const int b = i / Rp, r = i - b * Rp;
      xcur[i] = fmaf(w_in[r], xt_s[b], b_in[r]);
    }
    if (K > 1) prefetch_taps(0, p.t0, use & 1);
    cp_async_wait_all();
    __syncthreads();

    // conditioning of (t, l) for the thread's (b, gate) of stage A, prefetched one layer ahead
    const bool cond_thread = tid < g * BG;
    const int cb = cond_thread ? tid / g : 0;
    const int cgate = cond_thread ? rank * g + tid % g : 0;
    const bool cond_valid = cond_thread && cb < nb && cgate < p.G2;
    const float* cond_b = p.cond + (b0 + cb) * p.cond_stride_b;
    auto load_cond = [&](int64_t t, int l, float& ct, float& cs) {
      if (cond_valid) {
        const float* c = cond_b + (t - p.t0) * (static_cast<int64_t>(L) * G) + static_cast<int64_t>(l) * G + cgate;
        ct = __ldg(c);
        cs = __ldg(c + p.G2);
      } else {
        ct = 0.f;
        cs = 0.f;
      }
    };
    float cond_t, cond_s;
    load_cond(p.t0, 0, cond_t, cond_s);

    for (int64_t t = p.t0; t < p.t1; ++t) {
      // noise / forced audio of this step, for the thread that finishes batch element tid
      float srcv = 0.f;
      if (tid < nb) srcv = to_float(p.src[(b0 + tid) * p.stride_src_b + t * p.stride_src_t]);

      for (int l = 0; l < L; ++l) {
        const bool last = l == L - 1;
        // taps of the next layer while this one computes (x_{l+1}(t - D), D >= 1: written at an earlier
        // step, so at least one cluster barrier ago); layer 0 of the next step is fetched by the head,
        // after the barrier that follows this step's write of x_0(t) (with one layer, in this very phase)
        if (K > 1 && !last) prefetch_taps(l + 1, t, (use + 1) & 1);
        write_ring(l, t);

        const T* wl = (l < p.n_res ? w_s : w_rank) + p.head_elems + static_cast<int64_t>(l) * p.layer_elems;
        const T* wa = wl;               // (K*R, 2g)
        const T* wrs = wl + p.wa_elems;  // (g+1, R+S)

        // stage A: the 2g gate pre-activations of this CTA
        {
          float acc[BG];
#pragma unroll
          for (int b = 0; b < BG; ++b) acc[b] = 0.f;
          if (c_a < nc_a) {
            const float* tp = tap + (use & 1) * tap_buf;
            for (int k = 0; k + 1 < K; ++k)
              colsum_rows<T, BG>(wa + static_cast<int64_t>(k) * R * nc_a, nc_a, R, tp + k * BG * Rp, Rp, c_a, part_a,
                                 P_a, acc);
            colsum_rows<T, BG>(wa + static_cast<int64_t>(K - 1) * R * nc_a, nc_a, R, xcur, Rp, c_a, part_a, P_a, acc);
          }
          colsum_to_shared<BG>(acc, p.cw_a, lane, warp, red);
        }
        __syncthreads();
        if (cond_thread) {
          const int gg = tid % g;
          const float at = colsum_total<BG>(red, cb, gg) + cond_t;
          const float as = colsum_total<BG>(red, cb, g + gg) + cond_s;
          zbuf[cb * (g + 1) + gg] = tanhf(at) * (1.f / (1.f + expf(-as)));
          if (!last) {
            load_cond(t, l + 1, cond_t, cond_s);
          } else if (t + 1 < p.t1) {
            load_cond(t + 1, 0, cond_t, cond_s);
          }
        }
        __syncthreads();

        // stage C: partial residual (-> exchange buffer) and partial skip (accumulated here)
        float* xw = xch + (ph & 1) * BG * XW;
        for (int o = tid; o < RS; o += kSThreads) {
          if (last && o < R) continue;  // the last layer's residual output is unused
          float acc[BG];
#pragma unroll
          for (int b = 0; b < BG; ++b) acc[b] = 0.f;
          for (int gg = 0; gg <= g; ++gg) {
            const float w = to_float(wrs[static_cast<int64_t>(gg) * RS + o]);
#pragma unroll
            for (int b = 0; b < BG; ++b) acc[b] = fmaf(w, zbuf[b * (g + 1) + gg], acc[b]);
          }
          if (o < R) {
#pragma unroll
            for (int b = 0; b < BG; ++b) xw[b * XW + o] = acc[b];
          } else {
            const int s = o - R;
#pragma unroll
            for (int b = 0; b < BG; ++b) {
              const float v = l == 0 ? acc[b] : skipacc[b * S + s] + acc[b];
              if (last) {
                xw[b * XW + s] = v;
              } else {
                skipacc[b * S + s] = v;
              }
            }
          }
        }
        cp_async_wait_all();  // the taps prefetched above have landed (published by the barrier)
        cluster.sync();
        ++ph;
        ++use;

        if (!last) {  // x_{l+1} = (x_l + sum of the N partial residuals) * sqrt(0.5)
          float* xr = xch + ((ph - 1) & 1) * BG * XW;
          for (int i = tid; i < BG * R; i += kSThreads) {
            const int b = i / R, r = i - b * R;
            const float s = cluster_sum(cluster, xr, b * XW + r, N);
            xcur[b * Rp + r] = (xcur[b * Rp + r] + s) * kSqrtHalf;
          }
          __syncthreads();
        }
      }

      // ---- head (taps of layer 0 for the next step fetched meanwhile, into the buffer last read two
      // layers ago)
      if (K > 1 && t + 1 < p.t1) prefetch_taps(0, t + 1, use & 1);
      {
        float* xr = xch + ((ph - 1) & 1) * BG * XW;
        for (int i = tid; i < BG * S; i += kSThreads) {
          const int b = i / S, s = i - b * S;
          ybuf[b * p.Sp + s] = fmaxf(cluster_sum(cluster, xr, b * XW + s, N) * p.skip_scale, 0.f);
        }
      }
      __syncthreads();
      {
        float acc[BG];
#pragma unroll
        for (int b = 0; b < BG; ++b) acc[b] = 0.f;
        if (c_h < S1) colsum_rows<T, BG>(w_s, S1, S, ybuf, p.Sp, c_h, part_h, P_h, acc);
        colsum_to_shared<BG>(acc, p.cw_h, lane, warp, red);
      }
      __syncthreads();
      if (tid < S1 * BG) {
        const int b = tid / S1, c = tid - b * S1;
        y1buf[b * S1 + c] = fmaxf(colsum_total<BG>(red, b, c) + b1[c], 0.f);
      }
      __syncthreads();
      if (tid < 2 * BG) {
        const int b = tid >> 1, m = tid & 1;
        const T* w2 = w_s + p.h1_elems;  // (S1, 2)
        float s = 0.f;
        for (int c = 0; c < S1; ++c) s = fmaf(to_float(w2[2 * c + m]), y1buf[b * S1 + c], s);
        xch[(ph & 1) * BG * XW + b * XW + m] = s;
      }
      cp_async_wait_all();
      cluster.sync();
      ++ph;
      if (tid < BG) {
        const int b = tid;
        float* xr = xch + ((ph - 1) & 1) * BG * XW;
        float xt = 0.f;
        if (b < nb) {
          const float mean = b2[0] + cluster_sum(cluster, xr, b * XW, N);
          const float ls = b2[1] + cluster_sum(cluster, xr, b * XW + 1, N);
          if (p.forced) {
            xt = srcv;
          } else {
            xt = mean + expf(fmaxf(ls, p.log_scale_min)) * (p.temperature * srcv);
          }
          if (rank == 0) {
            const int64_t o = (b0 + b) * p.time + t;
            p.x_out[o] = xt;
            p.mean_out[o] = mean;
            p.ls_out[o] = ls;
          }
        }
        xt_s[b] = xt;
      }
      __syncthreads();
      for (int i = tid; i < BG * Rp; i += kSThreads) {  // x_0(t+1) = w_in x_t + b_in
        const int b = i / Rp, r = i - b * Rp;
        xcur[i] = fmaf(w_in[r], xt_s[b], b_in[r]);
      }
      __syncthreads();
    }
  }
  cluster.sync();  // no CTA leaves while another may still read its exchange buffer
}

// ---- conditioning projection of one chunk ------------------------------------------------------

// out[b, n, col] = bias[col] + sum_c w[c, col] h[b, c, t0 + n], n < steps. Block: 64 steps x 64
// columns, each thread 4 x 4 outputs (steps ty + 16 i, columns tx + 16 j), C in tiles of 16.
template <typename T>
__global__ void __launch_bounds__(256) wavenet_cond_kernel(const CondParams<T> p) {
  __shared__ float hs[kCondK][kCondTile];
  __shared__ float ws[kCondK][kCondTile];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kCondTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kCondTile;
  const int64_t b = blockIdx.z;
  const T* hb = p.h + b * p.stride_h_b;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
  for (int64_t c0 = 0; c0 < p.C; c0 += kCondK) {
#pragma unroll
    for (int e = tid; e < kCondK * kCondTile; e += 256) {
      const int kk = e / kCondTile, x = e % kCondTile;
      const int64_t c = c0 + kk, n = n0 + x, col = col0 + x;
      hs[kk][x] = (c < p.C && n < p.steps) ? to_float(hb[c * p.stride_h_c + (p.t0 + n) * p.stride_h_t]) : 0.f;
      ws[kk][x] = (c < p.C && col < p.LG) ? to_float(p.w[c * p.LG + col]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kCondK; ++kk) {
      float hv[4], wv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) hv[i] = hs[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) wv[j] = ws[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(hv[i], wv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t n = n0 + ty + 16 * i;
    if (n >= p.steps) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t col = col0 + tx + 16 * j;
      if (col < p.LG) p.out[b * p.out_stride_b + n * p.LG + col] = acc[i][j] + p.bias[col];
    }
  }
}

template <typename T, int BG>
const void* sampler_kernel_ptr() {
  return reinterpret_cast<const void*>(&wavenet_sampler_kernel<T, BG>);
}

}  // namespace

// ---- launchers (wavenet_sampler.cuh) -----------------------------------------------------------

const void* sampler_kernel(int dtype, int bg_template) {
  switch (dtype) {
    case kFloat32:
      switch (bg_template) {
        case 1: return sampler_kernel_ptr<float, 1>();
        case 2: return sampler_kernel_ptr<float, 2>();
        case 4: return sampler_kernel_ptr<float, 4>();
        default: return sampler_kernel_ptr<float, 8>();
      }
    case kFloat16:
      switch (bg_template) {
        case 1: return sampler_kernel_ptr<__half, 1>();
        case 2: return sampler_kernel_ptr<__half, 2>();
        case 4: return sampler_kernel_ptr<__half, 4>();
        default: return sampler_kernel_ptr<__half, 8>();
      }
    default:
      switch (bg_template) {
        case 1: return sampler_kernel_ptr<__nv_bfloat16, 1>();
        case 2: return sampler_kernel_ptr<__nv_bfloat16, 2>();
        case 4: return sampler_kernel_ptr<__nv_bfloat16, 4>();
        default: return sampler_kernel_ptr<__nv_bfloat16, 8>();
      }
  }
}

template <typename T>
void launch_cond(const CondParams<T>& p, dim3 grid, cudaStream_t stream) {
  detail::launch(&wavenet_cond_kernel<T>, grid, dim3(256), 0, stream, p, "wavenet_sample: conditioning kernel launch");
}

template <typename T>
void launch_sampler(const cudaLaunchConfig_t& cfg, int bg_template, const SamplerParams<T>& p) {
  switch (bg_template) {
    case 1: detail::check_cuda(cudaLaunchKernelEx(&cfg, &wavenet_sampler_kernel<T, 1>, p), "wavenet_sample: sampler launch"); break;
    case 2: detail::check_cuda(cudaLaunchKernelEx(&cfg, &wavenet_sampler_kernel<T, 2>, p), "wavenet_sample: sampler launch"); break;
    case 4: detail::check_cuda(cudaLaunchKernelEx(&cfg, &wavenet_sampler_kernel<T, 4>, p), "wavenet_sample: sampler launch"); break;
    default: detail::check_cuda(cudaLaunchKernelEx(&cfg, &wavenet_sampler_kernel<T, 8>, p), "wavenet_sample: sampler launch"); break;
  }
  detail::check_cuda(cudaGetLastError(), "wavenet_sample: sampler launch");
}

template void launch_cond<float>(const CondParams<float>&, dim3, cudaStream_t);
template void launch_cond<__half>(const CondParams<__half>&, dim3, cudaStream_t);
template void launch_cond<__nv_bfloat16>(const CondParams<__nv_bfloat16>&, dim3, cudaStream_t);
template void launch_sampler<float>(const cudaLaunchConfig_t&, int, const SamplerParams<float>&);
template void launch_sampler<__half>(const cudaLaunchConfig_t&, int, const SamplerParams<__half>&);
template void launch_sampler<__nv_bfloat16>(const cudaLaunchConfig_t&, int, const SamplerParams<__nv_bfloat16>&);

}  // namespace sampler
}  // namespace clarinet_cuda
