// The persistent WaveNet sampler's shared declarations, for its device code (wavenet_sampler.cu:
// the kernels and their typed launchers) and its host side (wavenet_sampler_host.cu: layout, plan,
// argument checks, launch loop): the launch-shape constants, the kernels' parameter structs, and the
// launchers the device file instantiates for float, __half and __nv_bfloat16. nvcc only. The design
// is described at the top of wavenet_sampler.cu; the public entry points are in clarinet_cuda.h.
#pragma once

#include <cstdint>

#include "clarinet_cuda.h"

namespace clarinet_cuda {
namespace sampler {

constexpr int kSWarps = 8;
constexpr int kSThreads = kSWarps * 32;
constexpr int kMaxGatePerCta = 16;   // g <= 16: the 2g stage-A columns fit one warp's lanes
constexpr int kMaxSkipPerCta = 32;   // ceil(S/N) <= 32: the head columns fit one warp's lanes
constexpr int kMaxCluster = 16;      // Hopper's non-portable cluster limit
constexpr int kCondTile = 64;        // conditioning kernel: 64 steps x 64 columns per block
constexpr int kCondK = 16;

struct SamplerSmem {  // byte offsets into dynamic shared memory (all multiples of 16)
  int64_t w, xcur, tap, xch, skip, y, z, red, vec, xt, y1, total;
};

template <typename T>
struct SamplerParams {
  // pointers
  const T* __restrict__ src;        // (B, T): noise, or the forced audio
  float* __restrict__ x_out;        // (B, T) contiguous
  float* __restrict__ mean_out;     // (B, T) contiguous
  float* __restrict__ ls_out;       // (B, T) contiguous
  const T* __restrict__ wpack;      // (N, rank_elems): per-rank packed weights (layout in clarinet_cuda.h)
  const float* __restrict__ fpack;  // w_in (R) | b_in (R) | b2 (2) | b1 padded (N * S1)
  const float* __restrict__ cond;   // (B, cond_stride_b): [b][n][l*G + gate] for steps t0 + n
  float* ring;                      // (B, ring_stride_b): [b][ring_off[l] + slot * Rp + r]
  const float* __restrict__ prev;   // (B,): the input of step 0 (a carried state), or null (silence)
  // sizes
  int64_t batch, time, t0, t1;      // the chunk is steps [t0, t1)
  int64_t clock0;                   // absolute step of t = 0 (ring slots are (clock0 + t) % ((K-1) d))
  int64_t cond_stride_b, ring_stride_b;
  int64_t h1_elems, head_elems, wa_elems, layer_elems, rank_elems;
  int R, Rp, G, G2, S, Sp, K, L, g, S1, XW;
  int cw_a, cw_h;                   // lanes per column group in stage A / head (powers of two <= 32)
  int n_res;                        // layers [0, n_res) in shared memory, the others read from wpack
  int bg;                           // batch elements per group (<= the BG template)
  int64_t n_groups;
  // strides (elements)
  int64_t stride_src_b, stride_src_t;
  // sampling
  float temperature, log_scale_min, skip_scale;
  bool forced;
  // per layer
  int dil[kMaxSamplerLayers];
  int64_t ring_off[kMaxSamplerLayers];
  SamplerSmem sm;
};

template <typename T>
struct CondParams {
  // pointers
  const T* __restrict__ h;         // (B, C, T)
  const T* __restrict__ w;         // (C, LG): [c, l*G + g] = w_cond of layer l
  const float* __restrict__ bias;  // (LG,): b_dil of every layer
  float* __restrict__ out;         // (B, out_stride_b): [b][n * LG + col]
  // sizes
  int64_t C, LG, steps, t0;
  // strides (elements)
  int64_t stride_h_b, stride_h_c, stride_h_t, out_stride_b;
};

// The sampler kernel instance for a dtype code (kFloat32 / kFloat16 / kBFloat16) and a batch template
// (1, 2, 4; anything else: 8), for cudaFuncSetAttribute and occupancy queries.
const void* sampler_kernel(int dtype, int bg_template);

// The conditioning projection of one chunk on `grid` (blocks of 256 threads), launch checked.
template <typename T>
void launch_cond(const CondParams<T>& p, dim3 grid, cudaStream_t stream);

// The persistent sampler over one chunk: `cfg` holds the grid, the cluster dimension, the dynamic
// shared memory and the stream; `bg_template` picks the instance (as sampler_kernel). Launch checked.
template <typename T>
void launch_sampler(const cudaLaunchConfig_t& cfg, int bg_template, const SamplerParams<T>& p);

}  // namespace sampler
}  // namespace clarinet_cuda
