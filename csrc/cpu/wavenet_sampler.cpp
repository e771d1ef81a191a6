// Incremental (one sample at a time) sampler for clarinet's GaussianWaveNet, CPU, float32.
//
// Reproduces clarinet.ops.wavenet_sample._StackStepper (the reference incremental sampler) step for
// step: 1x1 input conv -> residual layers with per-layer ring buffers of past layer inputs at the
// dilation -> summed skips * sqrt(1/layers) -> ReLU -> 1x1 -> ReLU -> 1x1 (mean, log-scale).
// The whole time loop runs here with the GIL released; Python only packs weights once
// (clarinet/ops/wavenet_sample.py) and allocates the outputs.
//
// Memory layout (all row-major float32, "input-major": row i holds the weights that multiply
// input i, so a matrix-vector product streams contiguous rows into a register accumulator):
//   w_in   (R,)                 input conv (in_channels = 1), b_in (R,)
//   per layer:
//     w_dil  (K*R, G)           [k*R + r, g] = w_dil[g, r, k]  (tap k, input channel r)
//     b_dil  (G,)
//     w_cond (C, G)             [c, g] = w_cond[g, c]
//     w_rs   (G/2, R+S)         [i, j] = cat(w_res, w_skip)[j, i]  (residual and skip fused)
//     b_rs   (R+S,)
//   w_out1 (S, S) transposed, b_out1 (S,), w_out2 (S, 2) transposed, b_out2 (2,)
//
// Loop structure per batch element (elements are independent; several run on std::threads):
//   for each chunk of `chunk` steps: cond[l][n][:] = b_dil + w_cond^T h[:, t0+n]  (n < chunk)
//   for each step t: x = w_in*prev + b_in; for each layer: a = cond + sum_taps W_k^T x_tap,
//   z = tanh(a[:G/2]) * sigmoid(a[G/2:]), rs = b_rs + W_rs^T z, ring[t % L] = x,
//   x = (x + rs[:R]) * sqrt(0.5), skip += rs[R:]; then the head; then the Gaussian draw.
// Matrix-vector products use AVX-512F or AVX2/FMA kernels when the CPU has them (checked at run
// time; the build itself stays portable x86-64), else a plain loop the compiler vectorises with SSE2.
//
// float16 weights (half_weights): every weight is rounded to float16 and the per-step matrices
// (w_dil, w_rs, w_out1: 573k values for teacher-small) are stored as float16, converted on load
// (F16C / AVX-512F). Measured on a 2-core AMD EPYC (1 MiB L2 per core), teacher-small, batch 1, one
// thread, chunk 64 (best of 3): float32 (2.3 MB of weights per sample, more than L2 holds) 34k
// (AVX2) / 40k (AVX-512) samples/s; float16 (1.15 MB) 55k / 68k samples/s, about 105 GFLOP/s at
// 1.6 MFLOP per sample. The AVX-512 remainder blocks (64/32/16 outputs with 4/2/1 accumulators
// instead of 16-output single-chain passes) took float16 from 61k to 68k.
#include "int8_matvec.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CLARINET_X86 1
#endif

namespace py = pybind11;

namespace {

constexpr float kSqrtHalf = 0.70710678118654752440f;

// ---- float16 weights: the same products over IEEE half-precision weights (half the bytes) ----
// Conversions are exact for the half -> float direction; float -> half rounds to nearest even.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u);  // inf / nan
  if (x >= 0x477ff000u) return sign | 0x7c00u;                                      // rounds past 65504
  if (x < 0x38800000u) {                                                            // subnormal or zero
    if (x < 0x33000000u) return sign;
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t r = x - 0x38000000u;  // rebias 127 -> 15
  r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
  return sign | static_cast<uint16_t>(r);
}

inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t v) { return half_to_float(v); }

// acc[o] += sum_i x[i] * W[i*ldw + o], o < nout, i < nin; W float32 or float16 (WT = uint16_t).
using MatVecFn = void (*)(const float* __restrict, int64_t, const float* __restrict, int64_t, float* __restrict,
                          int64_t);
using MatVecHFn = void (*)(const uint16_t* __restrict, int64_t, const float* __restrict, int64_t, float* __restrict,
                           int64_t);

template <typename WT>
void matvec_acc_generic(const WT* __restrict W, int64_t ldw, const float* __restrict x, int64_t nin,
                        float* __restrict acc, int64_t nout) {
  for (int64_t i = 0; i < nin; ++i) {
    const float xi = x[i];
    const WT* __restrict w = W + i * ldw;
    for (int64_t o = 0; o < nout; ++o) acc[o] += xi * to_f32(w[o]);
  }
}

#if defined(CLARINET_X86)
// 8 weights as floats: a plain load, or 8 halves converted on load (F16C).
__attribute__((target("avx2"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,f16c"))) inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// 64 outputs (8 ymm accumulators) per pass: one broadcast feeds 8 FMAs from one weight row.
template <typename WT>
__attribute__((target("avx2,fma,f16c"))) void matvec_acc_avx2(const WT* __restrict W, int64_t ldw,
                                                              const float* __restrict x, int64_t nin,
                                                              float* __restrict acc, int64_t nout) {
  int64_t o0 = 0;
  for (; o0 + 64 <= nout; o0 += 64) {
    __m256 a[8];
    for (int j = 0; j < 8; ++j) a[j] = _mm256_loadu_ps(acc + o0 + 8 * j);
    const WT* w = W + o0;
    for (int64_t i = 0; i < nin; ++i, w += ldw) {
      const __m256 b = _mm256_broadcast_ss(x + i);
      for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(b, load8(w + 8 * j), a[j]);
    }
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(acc + o0 + 8 * j, a[j]);
  }
  for (; o0 + 8 <= nout; o0 += 8) {
    __m256 a0 = _mm256_loadu_ps(acc + o0);
    const WT* w = W + o0;
    for (int64_t i = 0; i < nin; ++i, w += ldw) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i), load8(w), a0);
    _mm256_storeu_ps(acc + o0, a0);
  }
  for (; o0 < nout; ++o0) {
    float a = acc[o0];
    for (int64_t i = 0; i < nin; ++i) a = std::fma(x[i], to_f32(W[i * ldw + o0]), a);
    acc[o0] = a;
  }
}
#endif

// z[g] = tanh(a[g]) * sigmoid(a[G2 + g]), g < G2.
using GateFn = void (*)(const float* __restrict, float* __restrict, int64_t);

void gate_generic(const float* __restrict a, float* __restrict z, int64_t G2) {
  for (int64_t g = 0; g < G2; ++g) {
    const float s = 1.0f / (1.0f + std::exp(-a[G2 + g]));
    z[g] = std::tanh(a[g]) * s;
  }
}

// exp256 below, one lane at a time: the same IEEE operations (fused multiply-adds as std::fma), so
// the same bits. The int8 sampler gates through it on every ISA level (bit-identical levels).
inline float exp_cephes(float x) {
  x = std::min(x, 88.3762626647949f);
  x = std::max(x, -88.3762626647949f);
  const float fx = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));
  x = std::fma(-fx, 0.693359375f, x);
  x = std::fma(-fx, -2.12194440e-4f, x);
  const float z = x * x;
  float y = 1.9875691500E-4f;
  y = std::fma(y, x, 1.3981999507E-3f);
  y = std::fma(y, x, 8.3334519073E-3f);
  y = std::fma(y, x, 4.1665795894E-2f);
  y = std::fma(y, x, 1.6666665459E-1f);
  y = std::fma(y, x, 5.0000001201E-1f);
  y = std::fma(y, z, x);
  y = y + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(fx) + 127) << 23;
  float p2;
  std::memcpy(&p2, &bits, sizeof p2);
  return y * p2;
}

// tanh(x) = 2 / (1 + exp(-2x)) - 1; sigmoid(x) = 1 / (1 + exp(-x)), as gate_avx2 computes them.
inline void gate_cephes_range(const float* __restrict a, float* __restrict z, int64_t g0, int64_t G2) {
  for (int64_t g = g0; g < G2; ++g) {
    const float th = 2.0f / (1.0f + exp_cephes(-2.0f * a[g])) - 1.0f;
    const float sg = 1.0f / (1.0f + exp_cephes(0.0f - a[G2 + g]));
    z[g] = th * sg;
  }
}

void gate_cephes(const float* __restrict a, float* __restrict z, int64_t G2) { gate_cephes_range(a, z, 0, G2); }

#if defined(CLARINET_X86)
// exp(x) for 8 floats: Cephes' expf (range reduction by ln 2, degree-5 polynomial, a few ulp),
// inputs clamped to [-88.38, 88.38] (so the result is finite and never a denormal-producing NaN).
__attribute__((target("avx2,fma"))) inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, z, x);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_cvttps_epi32(fx);
  e = _mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) void gate_avx2(const float* __restrict a, float* __restrict z, int64_t G2) {
  const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), m2 = _mm256_set1_ps(-2.0f);
  int64_t g = 0;
  for (; g + 8 <= G2; g += 8) {
    const __m256 at = _mm256_loadu_ps(a + g), as = _mm256_loadu_ps(a + G2 + g);
    // tanh(x) = 2 / (1 + exp(-2x)) - 1; sigmoid(x) = 1 / (1 + exp(-x))
    const __m256 th = _mm256_sub_ps(_mm256_div_ps(two, _mm256_add_ps(one, exp256(_mm256_mul_ps(m2, at)))), one);
    const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), as))));
    _mm256_storeu_ps(z + g, _mm256_mul_ps(th, sg));
  }
  gate_cephes_range(a, z, g, G2);  // the same numbers as the vector lanes
}

// exp256 and gate_avx2 on 16 lanes: the same operations, so the same numbers as both (and as
// gate_cephes); 16 lanes took the gate from about 7 % of the int8 sampler's time to about 4 %.
__attribute__((target("avx512f"))) inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, z, x);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
  __m512i e = _mm512_cvttps_epi32(fx);
  e = _mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

__attribute__((target("avx512f"))) void gate_avx512(const float* __restrict a, float* __restrict z, int64_t G2) {
  const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f), m2 = _mm512_set1_ps(-2.0f);
  int64_t g = 0;
  for (; g + 16 <= G2; g += 16) {
    const __m512 at = _mm512_loadu_ps(a + g), as = _mm512_loadu_ps(a + G2 + g);
    const __m512 th = _mm512_sub_ps(_mm512_div_ps(two, _mm512_add_ps(one, exp512(_mm512_mul_ps(m2, at)))), one);
    const __m512 sg = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), as))));
    _mm512_storeu_ps(z + g, _mm512_mul_ps(th, sg));
  }
  gate_cephes_range(a, z, g, G2);
}
#endif

// out[i, g] = bias[g] + sum_c x[i, c] * W[c, g]  (x (n, C), W (C, G), out (n, G); all row-major).
using CondFn = void (*)(const float* __restrict, int64_t, int64_t, const float* __restrict, int64_t,
                        const float* __restrict, float* __restrict);

void cond_generic(const float* __restrict W, int64_t C, int64_t G, const float* __restrict x, int64_t n,
                  const float* __restrict bias, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    float* o = out + i * G;
    std::copy(bias, bias + G, o);
    matvec_acc_generic(W, G, x + i * C, C, o, G);
  }
}

#if defined(CLARINET_X86)
// Three time steps x 32 outputs per pass (12 ymm accumulators): each weight load feeds three FMAs
// (the matrix-vector kernel feeds one), so the chunked conditioning projection is FMA-bound.
__attribute__((target("avx2,fma"))) void cond_avx2(const float* __restrict W, int64_t C, int64_t G,
                                                   const float* __restrict x, int64_t n,
                                                   const float* __restrict bias, float* __restrict out) {
  int64_t i = 0;
  if (G % 32 == 0) {
    for (; i + 3 <= n; i += 3) {
      const float* x0 = x + i * C;
      const float* x1 = x0 + C;
      const float* x2 = x1 + C;
      for (int64_t o0 = 0; o0 < G; o0 += 32) {
        __m256 b0 = _mm256_loadu_ps(bias + o0), b1 = _mm256_loadu_ps(bias + o0 + 8);
        __m256 b2 = _mm256_loadu_ps(bias + o0 + 16), b3 = _mm256_loadu_ps(bias + o0 + 24);
        __m256 a00 = b0, a01 = b1, a02 = b2, a03 = b3;
        __m256 a10 = b0, a11 = b1, a12 = b2, a13 = b3;
        __m256 a20 = b0, a21 = b1, a22 = b2, a23 = b3;
        const float* w = W + o0;
        for (int64_t c = 0; c < C; ++c, w += G) {
          const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
          const __m256 w2 = _mm256_loadu_ps(w + 16), w3 = _mm256_loadu_ps(w + 24);
          __m256 h = _mm256_broadcast_ss(x0 + c);
          a00 = _mm256_fmadd_ps(h, w0, a00);
          a01 = _mm256_fmadd_ps(h, w1, a01);
          a02 = _mm256_fmadd_ps(h, w2, a02);
          a03 = _mm256_fmadd_ps(h, w3, a03);
          h = _mm256_broadcast_ss(x1 + c);
          a10 = _mm256_fmadd_ps(h, w0, a10);
          a11 = _mm256_fmadd_ps(h, w1, a11);
          a12 = _mm256_fmadd_ps(h, w2, a12);
          a13 = _mm256_fmadd_ps(h, w3, a13);
          h = _mm256_broadcast_ss(x2 + c);
          a20 = _mm256_fmadd_ps(h, w0, a20);
          a21 = _mm256_fmadd_ps(h, w1, a21);
          a22 = _mm256_fmadd_ps(h, w2, a22);
          a23 = _mm256_fmadd_ps(h, w3, a23);
        }
        float* o = out + i * G + o0;
        _mm256_storeu_ps(o, a00);
        _mm256_storeu_ps(o + 8, a01);
        _mm256_storeu_ps(o + 16, a02);
        _mm256_storeu_ps(o + 24, a03);
        o += G;
        _mm256_storeu_ps(o, a10);
        _mm256_storeu_ps(o + 8, a11);
        _mm256_storeu_ps(o + 16, a12);
        _mm256_storeu_ps(o + 24, a13);
        o += G;
        _mm256_storeu_ps(o, a20);
        _mm256_storeu_ps(o + 8, a21);
        _mm256_storeu_ps(o + 16, a22);
        _mm256_storeu_ps(o + 24, a23);
      }
    }
  }
  for (; i < n; ++i) {
    float* o = out + i * G;
    std::copy(bias, bias + G, o);
    matvec_acc_avx2(W, G, x + i * C, C, o, G);
  }
}
#endif

#if defined(CLARINET_X86)
// ---- AVX-512 (CPUs with full-width 512-bit FMA units double the AVX2 rate per cycle) ----
__attribute__((target("avx512f"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f"))) inline __m512 load16(const uint16_t* p) {
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// NACC zmm accumulators (16 outputs each) over all inputs: NACC independent FMA chains per row, so
// the 4-cycle FMA latency is hidden when NACC >= 4 (one accumulator alone runs at a quarter rate).
// PF > 0: prefetch the row PF ahead with the non-temporal hint (weights streamed from beyond L2).
template <int NACC, int PF, typename WT>
__attribute__((target("avx512f"))) inline void matvec512_block(const WT* __restrict W, int64_t ldw,
                                                               const float* __restrict x, int64_t nin,
                                                               float* __restrict acc, int64_t o0) {
  __m512 a[NACC];
  for (int j = 0; j < NACC; ++j) a[j] = _mm512_loadu_ps(acc + o0 + 16 * j);
  const WT* w = W + o0;
  for (int64_t i = 0; i < nin; ++i, w += ldw) {
    if (PF)
      for (int j = 0; j < NACC * 16 * static_cast<int>(sizeof(WT)); j += 64)
        _mm_prefetch(reinterpret_cast<const char*>(w + PF * ldw) + j, _MM_HINT_NTA);
    const __m512 b = _mm512_set1_ps(x[i]);
    for (int j = 0; j < NACC; ++j) a[j] = _mm512_fmadd_ps(b, load16(w + 16 * j), a[j]);
  }
  for (int j = 0; j < NACC; ++j) _mm512_storeu_ps(acc + o0 + 16 * j, a[j]);
}

// Blocks of 128 outputs, then one of 64, 32 and 16 as they fit (R + S = 192 is 128 + 64, not
// 128 + four single-chain passes), then one masked tail.
template <typename WT, int PF = 0>
__attribute__((target("avx512f"))) void matvec_acc_avx512(const WT* __restrict W, int64_t ldw,
                                                          const float* __restrict x, int64_t nin,
                                                          float* __restrict acc, int64_t nout) {
  int64_t o0 = 0;
  for (; o0 + 128 <= nout; o0 += 128) matvec512_block<8, PF>(W, ldw, x, nin, acc, o0);
  if (o0 + 64 <= nout) {
    matvec512_block<4, PF>(W, ldw, x, nin, acc, o0);
    o0 += 64;
  }
  if (o0 + 32 <= nout) {
    matvec512_block<2, PF>(W, ldw, x, nin, acc, o0);
    o0 += 32;
  }
  if (o0 + 16 <= nout) {
    matvec512_block<1, PF>(W, ldw, x, nin, acc, o0);
    o0 += 16;
  }
  if (o0 < nout) {
    const __mmask16 m = static_cast<__mmask16>((1u << (nout - o0)) - 1u);
    __m512 a0 = _mm512_maskz_loadu_ps(m, acc + o0);
    for (int64_t i = 0; i < nin; ++i) {
      alignas(64) float tmp[16] = {0};
      for (int64_t o = o0; o < nout; ++o) tmp[o - o0] = to_f32(W[i * ldw + o]);
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_load_ps(tmp), a0);
    }
    _mm512_mask_storeu_ps(acc + o0, m, a0);
  }
}

// Four time steps x 64 outputs per pass (16 zmm accumulators): each weight load feeds four FMAs.
__attribute__((target("avx512f"))) void cond_avx512(const float* __restrict W, int64_t C, int64_t G,
                                                    const float* __restrict x, int64_t n,
                                                    const float* __restrict bias, float* __restrict out) {
  int64_t i = 0;
  if (G % 64 == 0) {
    for (; i + 4 <= n; i += 4) {
      for (int64_t o0 = 0; o0 < G; o0 += 64) {
        __m512 a[4][4];
        for (int j = 0; j < 4; ++j) {
          const __m512 b = _mm512_loadu_ps(bias + o0 + 16 * j);
          for (int r = 0; r < 4; ++r) a[r][j] = b;
        }
        const float* w = W + o0;
        for (int64_t c = 0; c < C; ++c, w += G) {
          __m512 wv[4];
          for (int j = 0; j < 4; ++j) wv[j] = _mm512_loadu_ps(w + 16 * j);
          for (int r = 0; r < 4; ++r) {
            const __m512 hb = _mm512_set1_ps(x[(i + r) * C + c]);
            for (int j = 0; j < 4; ++j) a[r][j] = _mm512_fmadd_ps(hb, wv[j], a[r][j]);
          }
        }
        for (int r = 0; r < 4; ++r)
          for (int j = 0; j < 4; ++j) _mm512_storeu_ps(out + (i + r) * G + o0 + 16 * j, a[r][j]);
      }
    }
  }
  for (; i < n; ++i) {
    float* o = out + i * G;
    std::copy(bias, bias + G, o);
    matvec_acc_avx512(W, G, x + i * C, C, o, G);
  }
}
#endif

// Instruction-set level: 0 portable loops, 1 AVX2+FMA(+F16C), 2 AVX-512F; the highest the CPU has,
// capped by the caller's request ("auto", "avx512", "avx2", "generic"; simd=false means "generic").
int isa_level(bool allow_simd, const std::string& isa) {
  if (isa != "auto" && isa != "avx512" && isa != "avx2" && isa != "generic")
    throw std::invalid_argument("isa: expected 'auto', 'avx512', 'avx2' or 'generic', got '" + isa + "'");
  if (!allow_simd || isa == "generic") return 0;
  int level = 0;
#if defined(CLARINET_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) level = 1;
  if (level == 1 && __builtin_cpu_supports("avx512f")) level = 2;
#endif
  return isa == "avx2" ? std::min(level, 1) : level;
}

CondFn pick_cond(int level) {
#if defined(CLARINET_X86)
  if (level >= 2) return cond_avx512;
  if (level >= 1) return cond_avx2;
#endif
  (void)level;
  return cond_generic;
}

GateFn pick_gate(int level) {
#if defined(CLARINET_X86)
  if (level >= 2) return gate_avx512;
  if (level >= 1) return gate_avx2;
#endif
  (void)level;
  return gate_generic;
}

MatVecFn pick_matvec(int level) {
#if defined(CLARINET_X86)
  if (level >= 2) return matvec_acc_avx512<float>;
  if (level >= 1) return matvec_acc_avx2<float>;
#endif
  (void)level;
  return matvec_acc_generic<float>;
}

MatVecHFn pick_matvec_h(int level, bool prefetch) {
#if defined(CLARINET_X86)
  if (level >= 2) return prefetch ? matvec_acc_avx512<uint16_t, 8> : matvec_acc_avx512<uint16_t>;
  if (level >= 1) return matvec_acc_avx2<uint16_t>;
#endif
  (void)level;
  (void)prefetch;
  return matvec_acc_generic<uint16_t>;
}

std::vector<uint16_t> to_half(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  return h;
}

// Round every value to the nearest float16 (kept as float): the small weights of a float16 sampler.
void round_to_half(std::vector<float>& v) {
  for (float& x : v) x = half_to_float(float_to_half(x));
}

std::vector<float> copy_array(const py::array& arr, const std::vector<int64_t>& shape, const std::string& name) {
  py::array_t<float, py::array::c_style | py::array::forcecast> a(arr);
  if (a.ndim() != static_cast<py::ssize_t>(shape.size())) {
    throw std::invalid_argument(name + ": expected " + std::to_string(shape.size()) + " dimensions, got " +
                                std::to_string(a.ndim()));
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (a.shape(d) != shape[d]) {
      throw std::invalid_argument(name + ": dimension " + std::to_string(d) + " is " + std::to_string(a.shape(d)) +
                                  ", expected " + std::to_string(shape[d]));
    }
  }
  return std::vector<float>(a.data(), a.data() + a.size());
}

struct Layer {
  int64_t d = 1, L = 0;
  std::vector<float> w_dil, b_dil, w_cond, w_rs, b_rs;
  std::vector<uint16_t> w_dil_h, w_rs_h;  // float16 copies of the per-step matrices (half_weights)
  clarinet_int8::QMatrix q_dil, q_cond, q_rs;  // int8 copies (int8_weights)
};

// acc[o] += sum_i x[i] * W[i*ldw + o] with fused multiply-adds in input order (the float kernels'
// order at every SIMD level): the small float products of the int8 sampler, the same on every level.
// Cloned for FMA CPUs (std::fma is exact either way; without the clone it is a libm call, 1.5 % of
// the int8 teacher-small sampler's time).
__attribute__((target_clones("fma", "default"))) void matvec_acc_fma(const float* __restrict W, int64_t ldw,
                                                                      const float* __restrict x, int64_t nin,
                                                                      float* __restrict acc, int64_t nout) {
  for (int64_t o = 0; o < nout; ++o) {
    float a = acc[o];
    for (int64_t i = 0; i < nin; ++i) a = std::fma(x[i], W[i * ldw + o], a);
    acc[o] = a;
  }
}

// The kernels one run uses, picked once from the ISA level.
struct Kernels {
  MatVecFn mv;
  MatVecHFn mvh;
  GateFn gate;
  CondFn cond;
  clarinet_int8::Kernels q;
};

// A strided float32 view (strides in elements).
struct View2 {
  const float* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  float at(int64_t i, int64_t j) const { return p[i * s0 + j * s1]; }
};

class WaveNetSampler {
 public:
  WaveNetSampler(int64_t R, int64_t G, int64_t S, int64_t K, int64_t C, std::vector<int64_t> dilations,
                 py::array w_in, py::array b_in, py::list layers, py::array w_out1, py::array b_out1,
                 py::array w_out2, py::array b_out2, bool half_weights, bool int8_weights)
      : R_(R), G_(G), S_(S), K_(K), C_(C), half_(half_weights), int8_(int8_weights) {
    if (half_weights && int8_weights) throw std::invalid_argument("half_weights and int8_weights: pick one");
    if (R < 1 || G < 2 || G % 2 || S < 1 || K < 1 || C < 0)
      throw std::invalid_argument("WaveNetSampler: bad sizes (need R, S, K >= 1, C >= 0, G even >= 2)");
    if (static_cast<int64_t>(dilations.size()) != static_cast<int64_t>(py::len(layers)) || dilations.empty())
      throw std::invalid_argument("layers: expected one entry per dilation (and at least one)");
    w_in_ = copy_array(w_in, {R}, "w_in");
    b_in_ = copy_array(b_in, {R}, "b_in");
    for (size_t l = 0; l < dilations.size(); ++l) {
      if (dilations[l] < 1) throw std::invalid_argument("dilations: expected ints >= 1");
      py::tuple t = layers[l].cast<py::tuple>();
      if (t.size() != 5) throw std::invalid_argument("layers: each entry is (w_dil, b_dil, w_cond, w_rs, b_rs)");
      Layer ly;
      ly.d = dilations[l];
      ly.L = (K - 1) * ly.d;
      const std::string n = "layers[" + std::to_string(l) + "].";
      ly.w_dil = copy_array(t[0], {K * R, G}, n + "w_dil");
      ly.b_dil = copy_array(t[1], {G}, n + "b_dil");
      ly.w_cond = copy_array(t[2], {C, G}, n + "w_cond");
      ly.w_rs = copy_array(t[3], {G / 2, R + S}, n + "w_rs");
      ly.b_rs = copy_array(t[4], {R + S}, n + "b_rs");
      layers_.push_back(std::move(ly));
    }
    w_out1_ = copy_array(w_out1, {S, S}, "w_out1");
    b_out1_ = copy_array(b_out1, {S}, "b_out1");
    w_out2_ = copy_array(w_out2, {S, 2}, "w_out2");
    b_out2_ = copy_array(b_out2, {2}, "b_out2");
    if (half_) {  // every weight rounded to float16; the per-step matrices also stored as float16
      for (Layer& ly : layers_) {
        for (auto* v : {&ly.w_dil, &ly.b_dil, &ly.w_cond, &ly.w_rs, &ly.b_rs}) round_to_half(*v);
        ly.w_dil_h = to_half(ly.w_dil);
        ly.w_rs_h = to_half(ly.w_rs);
        std::vector<float>().swap(ly.w_dil);  // the float copies are not read again
        std::vector<float>().swap(ly.w_rs);
      }
      for (auto* v : {&w_in_, &b_in_, &w_out1_, &b_out1_, &w_out2_, &b_out2_}) round_to_half(*v);
      w_out1_h_ = to_half(w_out1_);
      // float16 weights read every step that overflow a 1 MiB L2 (teacher-small 1.19 MB, teacher 4 MB)
      // are prefetched 8 rows ahead (non-temporal), as the int8 ones: interleaved, one thread, 4800
      // samples x 20 rounds, load 5 on 2 cores, two runs: teacher-small 31.5k -> 33.1k and 34.1k ->
      // 35.4k samples/s, teacher 9.4k -> 10.1k and 12.5k -> 12.8k.
      int64_t step_bytes = 2 * static_cast<int64_t>(w_out1_h_.size());
      for (const Layer& ly : layers_) step_bytes += 2 * static_cast<int64_t>(ly.w_dil_h.size() + ly.w_rs_h.size());
      prefetch_h_ = step_bytes > (int64_t(1) << 20);
    }
    if (int8_) {  // the per-step matrices and the conditioning projection as int8 (int8_matvec.h)
      using clarinet_int8::QMatrix;
      for (Layer& ly : layers_) {
        ly.q_dil = QMatrix::quantize(ly.w_dil.data(), K * R, G);
        ly.q_cond = QMatrix::quantize(ly.w_cond.data(), C, G);
        ly.q_rs = QMatrix::quantize(ly.w_rs.data(), G / 2, R + S);
        for (auto* v : {&ly.w_dil, &ly.w_cond, &ly.w_rs}) std::vector<float>().swap(*v);
      }
      q_out1_ = QMatrix::quantize(w_out1_.data(), S, S);
      // Weights read every step that overflow a 1 MiB L2 (teacher: 2.1 MB) come from L3 each step:
      // prefetched 8 groups ahead (non-temporal), teacher int8 went from 39.1k to 41.2k samples/s; for
      // teacher-small (0.67 MB, L2-resident) the same prefetches cost 2-4 %, so they stay off there
      // (interleaved, one thread, 4800 samples x 20 rounds, load 2.9 on 2 cores).
      int64_t step_bytes = q_out1_.bytes();
      for (const Layer& ly : layers_) step_bytes += ly.q_dil.bytes() + ly.q_rs.bytes();
      if (step_bytes > (int64_t(1) << 20)) {
        for (Layer& ly : layers_) ly.q_dil.prefetch_nt = ly.q_rs.prefetch_nt = 8;
        q_out1_.prefetch_nt = 8;
      }
    }
  }

  // Floats of one batch element's carried state: the last input fed (1) + every layer's ring (L*R).
  int64_t state_size() const {
    int64_t n = 1;
    for (const Layer& ly : layers_) n += ly.L * R_;
    return n;
  }

  // h (B, C, T) float32 (any strides); noise (B, T) or None; audio (B, T) or None (teacher forcing);
  // x_out, mean_out, ls_out (B, T) float32 C-contiguous, written here.
  // state: None (start from silence at step 0) or a writable C-contiguous (B, state_size()) float32
  // array holding [input fed at the next step, ring of layer 0 (L0, R), ring of layer 1, ...] as left
  // by a previous call; it is read at the start and rewritten at the end, so consecutive calls over
  // consecutive spans of h continue one sequence exactly. step0: the absolute index of the first step
  // (ring slots are step % L).
  void run(py::array h, py::object noise, py::object audio, py::array x_out, py::array mean_out, py::array ls_out,
           double temperature, double log_scale_min, int64_t chunk, int64_t num_threads, bool simd,
           py::object state, int64_t step0, const std::string& isa) {
    const int level = isa_level(simd, isa);
    if (chunk < 1) throw std::invalid_argument("chunk: expected an int >= 1");
    if (step0 < 0) throw std::invalid_argument("step0: expected an int >= 0");
    auto hb = checked_float(h, 3, "h");
    const int64_t B = hb.shape[0], T = hb.shape[2];
    if (hb.shape[1] != C_)
      throw std::invalid_argument("h: expected " + std::to_string(C_) + " conditioning channels, got " +
                                  std::to_string(hb.shape[1]));
    const bool forced = !audio.is_none();
    if (forced == !noise.is_none())
      throw std::invalid_argument("exactly one of noise (free-running) and audio (teacher forcing) is needed");
    py::buffer_info src = checked_float(forced ? audio.cast<py::array>() : noise.cast<py::array>(), 2,
                                        forced ? "teacher_forcing" : "noise");
    if (src.shape[0] != B || src.shape[1] != T)
      throw std::invalid_argument(std::string(forced ? "teacher_forcing" : "noise") + ": expected shape (" +
                                  std::to_string(B) + ", " + std::to_string(T) + ")");
    float* outs[3];
    const char* names[3] = {"x_out", "mean_out", "ls_out"};
    py::array arrs[3] = {x_out, mean_out, ls_out};
    for (int i = 0; i < 3; ++i) {
      auto ob = checked_float(arrs[i], 2, names[i]);
      if (ob.shape[0] != B || ob.shape[1] != T || ob.strides[1] != static_cast<py::ssize_t>(sizeof(float)) ||
          ob.strides[0] != static_cast<py::ssize_t>(T * sizeof(float)) || ob.readonly)
        throw std::invalid_argument(std::string(names[i]) + ": expected a writable C-contiguous (B, T) float32 array");
      outs[i] = static_cast<float*>(ob.ptr);
    }
    float* st = nullptr;
    const int64_t SS = state_size();
    if (!state.is_none()) {
      auto sb = checked_float(state.cast<py::array>(), 2, "state");
      if (sb.shape[0] != B || sb.shape[1] != SS || sb.strides[1] != static_cast<py::ssize_t>(sizeof(float)) ||
          sb.strides[0] != static_cast<py::ssize_t>(SS * sizeof(float)) || sb.readonly)
        throw std::invalid_argument("state: expected a writable C-contiguous (" + std::to_string(B) + ", " +
                                    std::to_string(SS) + ") float32 array");
      st = static_cast<float*>(sb.ptr);
    }
    if (B == 0 || T == 0) return;
    const int64_t fs = sizeof(float);
    const float* hp = static_cast<const float*>(hb.ptr);
    const int64_t hs0 = hb.strides[0] / fs, hs1 = hb.strides[1] / fs, hs2 = hb.strides[2] / fs;
    View2 sv{static_cast<const float*>(src.ptr), src.strides[0] / fs, src.strides[1] / fs};
    Kernels kern{pick_matvec(level), pick_matvec_h(level, prefetch_h_), pick_gate(level), pick_cond(level),
                 clarinet_int8::pick_kernels(level)};
    if (int8_ && level == 0) kern.gate = gate_cephes;  // gate_avx2's numbers without AVX2
    const float temp = static_cast<float>(temperature), lsmin = static_cast<float>(log_scale_min);
    const int64_t n_chunk = std::min(chunk, T);

    auto work = [&](int64_t b) {
      View2 hv{hp + b * hs0, hs1, hs2};
      run_one(kern, hv, sv.p + b * sv.s0, sv.s1, forced, outs[0] + b * T, outs[1] + b * T, outs[2] + b * T, T, temp,
              lsmin, n_chunk, st ? st + b * SS : nullptr, step0);
    };
    const int64_t nt = std::max<int64_t>(1, std::min(num_threads, B));
    py::gil_scoped_release release;
    if (nt == 1) {
      for (int64_t b = 0; b < B; ++b) work(b);
      return;
    }
    std::vector<std::thread> pool;
    std::exception_ptr err;
    std::mutex mu;
    for (int64_t w = 0; w < nt; ++w) {
      pool.emplace_back([&, w]() {
        try {
          for (int64_t b = w; b < B; b += nt) work(b);
        } catch (...) {
          std::lock_guard<std::mutex> g(mu);
          if (!err) err = std::current_exception();
        }
      });
    }
    for (auto& th : pool) th.join();
    if (err) std::rethrow_exception(err);
  }

  // The instruction set run() uses by default: "avx512", "avx2" or "generic".
  std::string isa() const {
    static const char* names[] = {"generic", "avx2", "avx512"};
    return names[isa_level(true, "auto")];
  }

  // The int8 products' instruction set for run(isa=...): "avx512vnni", "avxvnni" or "generic".
  std::string int8_isa(const std::string& isa) const {
    return clarinet_int8::level_name(clarinet_int8::pick_kernels(isa_level(true, isa)).level);
  }

  // "float32", "float16" or "int8": the weights the per-step products stream.
  std::string weights() const { return int8_ ? "int8" : half_ ? "float16" : "float32"; }

 private:
  static py::buffer_info checked_float(const py::array& a, int ndim, const std::string& name) {
    if (!py::isinstance<py::array_t<float>>(a) || a.dtype().kind() != 'f' || a.itemsize() != sizeof(float))
      throw std::invalid_argument(name + ": expected a float32 array");
    py::buffer_info info = a.request();
    if (info.ndim != ndim)
      throw std::invalid_argument(name + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                  std::to_string(info.ndim));
    for (auto s : info.strides)
      if (s % static_cast<py::ssize_t>(sizeof(float)))
        throw std::invalid_argument(name + ": strides must be multiples of the element size");
    return info;
  }

  // The per-step products: float32 weights through mv, float16 ones (half_) through mvh.
  void step_mv(MatVecFn mv, MatVecHFn mvh, const std::vector<float>& w, const std::vector<uint16_t>& wh,
               int64_t offset, int64_t ldw, const float* x, int64_t nin, float* acc, int64_t nout) const {
    if (half_)
      mvh(wh.data() + offset, ldw, x, nin, acc, nout);
    else
      mv(w.data() + offset, ldw, x, nin, acc, nout);
  }

  void run_one(const Kernels& kern, View2 h, const float* src, int64_t src_s, bool forced, float* xo, float* mo,
               float* lo, int64_t T, float temp, float lsmin, int64_t n_chunk, float* state, int64_t step0) const {
    const int64_t R = R_, G = G_, S = S_, K = K_, C = C_, G2 = G / 2, NL = static_cast<int64_t>(layers_.size());
    const float skip_scale = std::sqrt(1.0f / static_cast<float>(NL));
    // ring buffers (zero = the reference's zero-initialised history), conditioning chunk, scratch
    std::vector<std::vector<float>> ring(NL);
    for (int64_t l = 0; l < NL; ++l) ring[l].assign(layers_[l].L * R, 0.0f);
    float prev = 0.0f;
    if (state) {  // continue a sequence: [prev, ring 0, ring 1, ...]
      const float* q = state;
      prev = *q++;
      for (int64_t l = 0; l < NL; ++l) {
        std::copy(q, q + ring[l].size(), ring[l].begin());
        q += ring[l].size();
      }
    }
    std::vector<float> cond(NL * n_chunk * G), hT(n_chunk * C);
    std::vector<float> x(R), a(G), z(G2), rs(R + S), skip(S), y1(S), y2(2);
    const MatVecFn mv = kern.mv;
    const MatVecHFn mvh = kern.mvh;
    const clarinet_int8::Kernels& q = kern.q;
    // int8 scratch: quantized activations (u8), int32 sums, the dilated conv's input [taps, x]
    const int64_t C4 = (C + 3) / 4 * 4;
    std::vector<uint8_t> ub(int8_ ? (std::max({K * R, G2, S}) + 3) / 4 * 4 : 0), hq(int8_ ? n_chunk * C4 : 0);
    std::vector<float> xin(int8_ ? K * R : 0), hs(int8_ ? n_chunk : 0);
    for (int64_t t0 = 0; t0 < T; t0 += n_chunk) {
      const int64_t n = std::min(n_chunk, T - t0);
      // conditioning projection of the next n steps, every layer: cond = b_dil + w_cond^T h
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < C; ++c) hT[i * C + c] = h.at(c, t0 + i);
      if (int8_) {  // h quantized once per step, shared by every layer
        for (int64_t i = 0; i < n; ++i) hs[i] = q.quant_signed(hT.data() + i * C, C, hq.data() + i * C4);
        for (int64_t l = 0; l < NL; ++l) {
          const Layer& ly = layers_[l];
          for (int64_t i = 0; i < n; ++i) {
            q.matvec(ly.q_cond, hq.data() + i * C4, hs[i], true, ly.b_dil.data(), cond.data() + (l * n_chunk + i) * G);
          }
        }
      } else {
        for (int64_t l = 0; l < NL; ++l) {
          const Layer& ly = layers_[l];
          kern.cond(ly.w_cond.data(), C, G, hT.data(), n, ly.b_dil.data(), cond.data() + l * n_chunk * G);
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        const int64_t t = t0 + i, ta = step0 + t;  // local index, absolute step (ring slots)
        for (int64_t r = 0; r < R; ++r) x[r] = prev * w_in_[r] + b_in_[r];
        for (int64_t l = 0; l < NL; ++l) {
          const Layer& ly = layers_[l];
          const float* ci = cond.data() + (l * n_chunk + i) * G;
          const int64_t L = ly.L;
          const int64_t pos = L ? ta % L : 0;
          float* rb = ring[l].data();
          auto tap = [&](int64_t k) {  // tap k < K-1 reads the input of step t - (K-1-k)*d
            return rb + ((pos - (K - 1 - k) * ly.d + L) % L) * R;
          };
          if (int8_) {  // one dynamic scale over [taps, x] (K*R values), one over z
            for (int64_t k = 0; k + 1 < K; ++k) std::copy(tap(k), tap(k) + R, xin.begin() + k * R);
            std::copy(x.begin(), x.end(), xin.begin() + (K - 1) * R);
            float s = q.quant_signed(xin.data(), K * R, ub.data());
            q.matvec(ly.q_dil, ub.data(), s, true, ci, a.data());  // a = cond + W_dil^T [taps, x]
            kern.gate(a.data(), z.data(), G2);
            s = q.quant_signed(z.data(), G2, ub.data());
            q.matvec(ly.q_rs, ub.data(), s, true, ly.b_rs.data(), rs.data());
          } else {
            std::copy(ci, ci + G, a.begin());  // a = w_cond h + b_dil, then the taps
            for (int64_t k = 0; k + 1 < K; ++k)
              step_mv(mv, mvh, ly.w_dil, ly.w_dil_h, k * R * G, G, tap(k), R, a.data(), G);
            step_mv(mv, mvh, ly.w_dil, ly.w_dil_h, (K - 1) * R * G, G, x.data(), R, a.data(), G);
            kern.gate(a.data(), z.data(), G2);
            std::fill(rs.begin(), rs.end(), 0.0f);
            step_mv(mv, mvh, ly.w_rs, ly.w_rs_h, 0, R + S, z.data(), G2, rs.data(), R + S);
            for (int64_t j = 0; j < R + S; ++j) rs[j] += ly.b_rs[j];
          }
          if (L) std::copy(x.begin(), x.end(), rb + pos * R);  // the slot tap 0 just read now holds step t
          for (int64_t r = 0; r < R; ++r) x[r] = (x[r] + rs[r]) * kSqrtHalf;
          if (l == 0)
            std::copy(rs.begin() + R, rs.end(), skip.begin());
          else
            for (int64_t s = 0; s < S; ++s) skip[s] += rs[R + s];
        }
        for (int64_t s = 0; s < S; ++s) skip[s] = std::max(skip[s] * skip_scale, 0.0f);
        y2[0] = 0.0f;
        y2[1] = 0.0f;
        if (int8_) {  // skip >= 0 here: all 8 bits, no offset
          const float s = q.quant_unsigned(skip.data(), S, ub.data());
          q.matvec(q_out1_, ub.data(), s, false, b_out1_.data(), y1.data());
          for (int64_t j = 0; j < S; ++j) y1[j] = std::max(y1[j], 0.0f);
          matvec_acc_fma(w_out2_.data(), 2, y1.data(), S, y2.data(), 2);
        } else {
          std::fill(y1.begin(), y1.end(), 0.0f);
          step_mv(mv, mvh, w_out1_, w_out1_h_, 0, S, skip.data(), S, y1.data(), S);
          for (int64_t s = 0; s < S; ++s) y1[s] = std::max(y1[s] + b_out1_[s], 0.0f);
          mv(w_out2_.data(), 2, y1.data(), S, y2.data(), 2);
        }
        const float m = y2[0] + b_out2_[0], ls = y2[1] + b_out2_[1];
        mo[t] = m;
        lo[t] = ls;
        float xt;
        if (forced) {
          xt = src[t * src_s];
        } else {
          const float tn = temp * src[t * src_s];
          xt = m + std::exp(std::max(ls, lsmin)) * tn;
        }
        xo[t] = xt;
        prev = xt;
      }
    }
    if (state) {
      float* q = state;
      *q++ = prev;
      for (int64_t l = 0; l < NL; ++l) q = std::copy(ring[l].begin(), ring[l].end(), q);
    }
  }

  int64_t R_, G_, S_, K_, C_;
  bool half_ = false, int8_ = false, prefetch_h_ = false;
  std::vector<float> w_in_, b_in_, w_out1_, b_out1_, w_out2_, b_out2_;
  clarinet_int8::QMatrix q_out1_;
  std::vector<uint16_t> w_out1_h_;
  std::vector<Layer> layers_;
};

}  // namespace

void register_wavenet_sampler(py::module_& m) {
  py::class_<WaveNetSampler>(m, "WaveNetSampler",
                             "Packed float32 weights of a GaussianWaveNet stack and its C++ incremental sampler "
                             "(see clarinet.ops.wavenet_sample).")
      .def(py::init<int64_t, int64_t, int64_t, int64_t, int64_t, std::vector<int64_t>, py::array, py::array,
                    py::list, py::array, py::array, py::array, py::array, bool, bool>(),
           py::arg("R"), py::arg("G"), py::arg("S"), py::arg("K"), py::arg("C"), py::arg("dilations"),
           py::arg("w_in"), py::arg("b_in"), py::arg("layers"), py::arg("w_out1"), py::arg("b_out1"),
           py::arg("w_out2"), py::arg("b_out2"), py::arg("half_weights") = false, py::arg("int8_weights") = false,
           "half_weights: every weight rounded to float16, the per-step matrices stored and streamed as "
           "float16 (half the bytes per sample; products still accumulate in float32). int8_weights: the "
           "per-step matrices, the conditioning projection and the first output 1x1 quantized to int8 per "
           "output channel, activations per step with a dynamic scale, int32 sums on vpdpbusd "
           "(csrc/cpu/int8_matvec.h); biases, the input conv and the last 1x1 stay float32.")
      .def("run", &WaveNetSampler::run, py::arg("h"), py::arg("noise"), py::arg("audio"), py::arg("x_out"),
           py::arg("mean_out"), py::arg("ls_out"), py::arg("temperature"), py::arg("log_scale_min"),
           py::arg("chunk"), py::arg("num_threads") = 1, py::arg("simd") = true, py::arg("state") = py::none(),
           py::arg("step0") = 0, py::arg("isa") = "auto",
           "Run the sampling loop (GIL released); writes x_out, mean_out, ls_out (B, T) and, when given, "
           "reads and rewrites the carried state (B, state_size) (see state_size).")
      .def_property_readonly("state_size", &WaveNetSampler::state_size)
      .def_property_readonly("isa", &WaveNetSampler::isa)
      .def_property_readonly("weights", &WaveNetSampler::weights)
      .def("int8_isa", &WaveNetSampler::int8_isa, py::arg("isa") = "auto",
           "The int8 products' instruction set that run(isa=isa) uses: avx512vnni, avxvnni or generic.");
}
