// int8 matrix-vector products on vpdpbusd (see int8_matvec.h for the quantization scheme).
#include "int8_matvec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CLARINET_X86 1
#endif

namespace clarinet_int8 {

QMatrix QMatrix::quantize(const float* W, int64_t nin, int64_t nout) {
  QMatrix m;
  m.nin = nin;
  m.nout = nout;
  m.groups = (nin + 3) / 4;
  m.nout_pad = (nout + 15) / 16 * 16;
  m.q.assign(static_cast<size_t>(m.groups * 4 * m.nout_pad), 0);
  m.scale.assign(static_cast<size_t>(m.nout_pad), 0.0f);
  m.shift.assign(static_cast<size_t>(m.nout_pad), 0);
  int64_t o0 = 0, width = panel_width(0, m.nout_pad);
  for (int64_t o = 0; o < nout; ++o) {
    if (o >= o0 + width) {
      o0 += width;
      width = panel_width(o0, m.nout_pad);
    }
    float mx = 0.0f;
    for (int64_t i = 0; i < nin; ++i) {
      const float w = W[i * nout + o];
      if (!std::isfinite(w)) throw std::invalid_argument("int8 weights: a weight is not finite");
      mx = std::max(mx, std::fabs(w));
    }
    const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
    int32_t sum = 0;
    for (int64_t i = 0; i < nin; ++i) {
      const int q = std::min(127, std::max(-127, static_cast<int>(std::nearbyint(W[i * nout + o] * inv))));
      m.q[4 * m.groups * o0 + 4 * width * (i / 4) + 4 * (o - o0) + i % 4] = static_cast<int8_t>(q);
      sum += q;
    }
    m.scale[o] = mx / 127.0f;
    m.shift[o] = 128 * sum;
  }
  return m;
}

namespace {

#if defined(CLARINET_X86)
// acc += vpdpbusd(u, w) in place. GCC 12 compiles the intrinsics' (acc, u, w) -> acc form with two
// register copies per accumulator and iteration in these loops (16 extra moves per 8 vpdpbusd, seen
// in perf annotate); the accumulator as a "+v" operand keeps it in one register. The 256-bit form is
// forced to the VEX encoding (AVX-VNNI), which CPUs without AVX-512 VL decode.
__attribute__((target("avx512f,avx512vnni"))) inline void dpbusd(__m512i& acc, __m512i u, const int8_t* w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "m"(*reinterpret_cast<const __m512i*>(w)));
}
__attribute__((target("avx2,avxvnni"))) inline void dpbusd(__m256i& acc, __m256i u, const int8_t* w) {
  asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "m"(*reinterpret_cast<const __m256i*>(w)));
}
#endif

// ---- portable (also the bodies of the AVX2-level quantize/dequantize, compiled there with FMA) ----
void sums_generic(const QMatrix& m, const uint8_t* __restrict u, int32_t* __restrict acc) {
  std::fill(acc, acc + m.nout_pad, 0);
  for (int64_t o0 = 0, width; o0 < m.nout_pad; o0 += width) {
    width = panel_width(o0, m.nout_pad);
    for (int64_t g = 0; g < m.groups; ++g) {
      const int8_t* w = m.q.data() + 4 * m.groups * o0 + 4 * width * g;
      const int32_t u0 = u[4 * g], u1 = u[4 * g + 1], u2 = u[4 * g + 2], u3 = u[4 * g + 3];
      for (int64_t o = 0; o < width; ++o)
        acc[o0 + o] += u0 * w[4 * o] + u1 * w[4 * o + 1] + u2 * w[4 * o + 2] + u3 * w[4 * o + 3];
    }
  }
}

inline __attribute__((always_inline)) float quant_signed_body(const float* __restrict x, int64_t n,
                                                              uint8_t* __restrict u) {
  float mx = 0.0f;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::fabs(x[i]));
  const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const int q = std::min(127, std::max(-127, static_cast<int>(std::nearbyint(x[i] * inv))));
    u[i] = static_cast<uint8_t>(q + 128);
  }
  for (int64_t i = n; i % 4; ++i) u[i] = 128;
  return mx / 127.0f;
}

inline __attribute__((always_inline)) float quant_unsigned_body(const float* __restrict x, int64_t n,
                                                                uint8_t* __restrict u) {
  float mx = 0.0f;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  const float inv = mx > 0.0f ? 255.0f / mx : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const int q = std::min(255, std::max(0, static_cast<int>(std::nearbyint(x[i] * inv))));
    u[i] = static_cast<uint8_t>(q);
  }
  for (int64_t i = n; i % 4; ++i) u[i] = 0;
  return mx / 255.0f;
}

inline __attribute__((always_inline)) void dequant_body(const QMatrix& m, const int32_t* __restrict acc, float s,
                                                        bool is_signed, const float* __restrict base,
                                                        float* __restrict out) {
  for (int64_t o = 0; o < m.nout; ++o) {
    const int32_t a = is_signed ? acc[o] - m.shift[o] : acc[o];
    out[o] = std::fma(static_cast<float>(a), s * m.scale[o], base[o]);
  }
}

void matvec_generic(const QMatrix& m, const uint8_t* __restrict u, float s, bool is_signed,
                    const float* __restrict base, float* __restrict out) {
  thread_local std::vector<int32_t> acc;
  acc.resize(static_cast<size_t>(m.nout_pad));
  sums_generic(m, u, acc.data());
  dequant_body(m, acc.data(), s, is_signed, base, out);
}

float quant_signed_generic(const float* __restrict x, int64_t n, uint8_t* __restrict u) {
  return quant_signed_body(x, n, u);
}
float quant_unsigned_generic(const float* __restrict x, int64_t n, uint8_t* __restrict u) {
  return quant_unsigned_body(x, n, u);
}

#if defined(CLARINET_X86)
// ---- AVX-VNNI (256-bit vpdpbusd; the quantize/dequantize bodies above, compiled with AVX2+FMA) ----
__attribute__((target("avx2,fma"))) float quant_signed_avx2(const float* __restrict x, int64_t n,
                                                            uint8_t* __restrict u) {
  return quant_signed_body(x, n, u);
}
__attribute__((target("avx2,fma"))) float quant_unsigned_avx2(const float* __restrict x, int64_t n,
                                                              uint8_t* __restrict u) {
  return quant_unsigned_body(x, n, u);
}

// NACC (1, 2, 4 or 8) ymm accumulators (8 outputs each): one broadcast of 4 activation bytes feeds
// NACC vpdpbusd. Named accumulators, not an array: an array element bound to an asm operand stays in
// memory (GCC 12 scalarises arrays before it unrolls the loop over them).
template <int NACC>
__attribute__((target("avx2,avxvnni"))) inline void block256(const int8_t* w, int64_t ld, int64_t groups,
                                                             const uint8_t* __restrict u, int32_t* __restrict acc) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t g = 0; g < groups; ++g, w += ld) {
    int32_t b4;
    std::memcpy(&b4, u + 4 * g, 4);
    const __m256i b = _mm256_set1_epi32(b4);
    dpbusd(a0, b, w);
    if (NACC > 1) dpbusd(a1, b, w + 32);
    if (NACC > 2) {
      dpbusd(a2, b, w + 64);
      dpbusd(a3, b, w + 96);
    }
    if (NACC > 4) {
      dpbusd(a4, b, w + 128);
      dpbusd(a5, b, w + 160);
      dpbusd(a6, b, w + 192);
      dpbusd(a7, b, w + 224);
    }
  }
  const __m256i a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  for (int j = 0; j < NACC; ++j) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8 * j), a[j]);
}

// Each panel in 64-output sub-blocks (8 accumulators), then 32 and 16.
__attribute__((target("avx2,avxvnni"))) void sums_avxvnni(const QMatrix& m, const uint8_t* __restrict u,
                                                          int32_t* __restrict acc) {
  for (int64_t o0 = 0, width; o0 < m.nout_pad; o0 += width) {
    width = panel_width(o0, m.nout_pad);
    const int8_t* w = m.q.data() + 4 * m.groups * o0;
    const int64_t ld = 4 * width;
    int64_t j = 0;
    for (; j + 64 <= width; j += 64) block256<8>(w + 4 * j, ld, m.groups, u, acc + o0 + j);
    if (j + 32 <= width) {
      block256<4>(w + 4 * j, ld, m.groups, u, acc + o0 + j);
      j += 32;
    }
    if (j + 16 <= width) block256<2>(w + 4 * j, ld, m.groups, u, acc + o0 + j);
  }
}

__attribute__((target("avx2,fma,avxvnni"))) void matvec_avxvnni(const QMatrix& m, const uint8_t* __restrict u,
                                                                float s, bool is_signed,
                                                                const float* __restrict base,
                                                                float* __restrict out) {
  thread_local std::vector<int32_t> acc;
  acc.resize(static_cast<size_t>(m.nout_pad));
  sums_avxvnni(m, u, acc.data());
  dequant_body(m, acc.data(), s, is_signed, base, out);
}

// ---- AVX-512 VNNI ----
// NACC (1, 2, 4 or 8) zmm accumulators (16 outputs each); 8 of them (128 outputs) hide vpdpbusd's
// latency. Named accumulators as in block256.
template <int NACC>
__attribute__((target("avx512f,avx512vnni"))) inline void block512(const QMatrix& m, const uint8_t* __restrict u,
                                                                   float s, bool is_signed,
                                                                   const float* __restrict base,
                                                                   float* __restrict out, int64_t o0) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const int64_t groups = m.groups, ld = 64 * NACC;  // the panel of these 16 * NACC outputs
  const int8_t* w = m.q.data() + 4 * groups * o0;
  const int64_t ahead = m.prefetch_nt * ld;
  for (int64_t g = 0; g < groups; ++g, w += ld) {
    int32_t b4;
    std::memcpy(&b4, u + 4 * g, 4);
    const __m512i b = _mm512_set1_epi32(b4);
    if (ahead)  // past the end of the panel it touches the next one (or the padding): harmless
      for (int j = 0; j < NACC; ++j) _mm_prefetch(reinterpret_cast<const char*>(w + ahead + 64 * j), _MM_HINT_NTA);
    dpbusd(a0, b, w);
    if (NACC > 1) dpbusd(a1, b, w + 64);
    if (NACC > 2) {
      dpbusd(a2, b, w + 128);
      dpbusd(a3, b, w + 192);
    }
    if (NACC > 4) {
      dpbusd(a4, b, w + 256);
      dpbusd(a5, b, w + 320);
      dpbusd(a6, b, w + 384);
      dpbusd(a7, b, w + 448);
    }
  }
  const __m512i a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  // dequantize in registers (dequant_body's operations); shift and scale are padded to 16, base and
  // out are read and written under the mask
  const __m512 vs = _mm512_set1_ps(s);
  for (int j = 0; j < NACC; ++j) {
    const int64_t o = o0 + 16 * j;
    if (o >= m.nout) break;
    const __mmask16 k = m.nout - o >= 16 ? static_cast<__mmask16>(0xffff)
                                         : static_cast<__mmask16>((1u << (m.nout - o)) - 1u);
    const __m512i v = is_signed ? _mm512_sub_epi32(a[j], _mm512_loadu_si512(m.shift.data() + o)) : a[j];
    const __m512 sc = _mm512_mul_ps(vs, _mm512_loadu_ps(m.scale.data() + o));
    _mm512_mask_storeu_ps(out + o, k, _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), sc, _mm512_maskz_loadu_ps(k, base + o)));
  }
}

__attribute__((target("avx512f,avx512vnni"))) void matvec_avx512vnni(const QMatrix& m, const uint8_t* __restrict u,
                                                                     float s, bool is_signed,
                                                                     const float* __restrict base,
                                                                     float* __restrict out) {
  int64_t o0 = 0;  // one block per panel (panel_width)
  const int64_t n = m.nout_pad;  // a multiple of 16
  for (; o0 + 128 <= n; o0 += 128) block512<8>(m, u, s, is_signed, base, out, o0);
  if (o0 + 64 <= n) {
    block512<4>(m, u, s, is_signed, base, out, o0);
    o0 += 64;
  }
  if (o0 + 32 <= n) {
    block512<2>(m, u, s, is_signed, base, out, o0);
    o0 += 32;
  }
  if (o0 + 16 <= n) block512<1>(m, u, s, is_signed, base, out, o0);
}

// The same IEEE steps as quant_signed_body: max |x| (exact in any order), x * (127 / max) rounded to
// nearest even (vcvtps2dq under the default MXCSR, as nearbyint), clamped, + 128.
template <bool SIGNED>
__attribute__((target("avx512f"))) float quant512(const float* __restrict x, int64_t n, uint8_t* __restrict u) {
  __m512 vm = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    vm = _mm512_max_ps(vm, SIGNED ? _mm512_abs_ps(v) : v);
  }
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
  if (n > i) {
    const __m512 v = _mm512_maskz_loadu_ps(tail, x + i);
    vm = _mm512_max_ps(vm, SIGNED ? _mm512_abs_ps(v) : v);
  }
  const float mx = _mm512_reduce_max_ps(vm);
  const float top = SIGNED ? 127.0f : 255.0f;
  const float inv = mx > 0.0f ? top / mx : 0.0f;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(SIGNED ? -127 : 0), hi = _mm512_set1_epi32(SIGNED ? 127 : 255);
  const __m512i off = _mm512_set1_epi32(SIGNED ? 128 : 0);
  for (i = 0; i + 16 <= n; i += 16) {
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv));
    q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + i), _mm512_cvtepi32_epi8(q));
  }
  if (n > i) {
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + i), vinv));
    q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
    _mm512_mask_cvtepi32_storeu_epi8(u + i, tail, q);
  }
  for (i = n; i % 4; ++i) u[i] = SIGNED ? 128 : 0;
  return mx / top;
}

__attribute__((target("avx512f"))) float quant_signed_avx512(const float* __restrict x, int64_t n,
                                                             uint8_t* __restrict u) {
  return quant512<true>(x, n, u);
}
__attribute__((target("avx512f"))) float quant_unsigned_avx512(const float* __restrict x, int64_t n,
                                                               uint8_t* __restrict u) {
  return quant512<false>(x, n, u);
}

#endif

}  // namespace

Kernels pick_kernels(int float_level) {
  Kernels k{0, matvec_generic, quant_signed_generic, quant_unsigned_generic};
#if defined(CLARINET_X86)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (float_level >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"))
    return Kernels{2, matvec_avx512vnni, quant_signed_avx512, quant_unsigned_avx512};
  if (float_level >= 1 && avx2 && __builtin_cpu_supports("avxvnni"))
    return Kernels{1, matvec_avxvnni, quant_signed_avx2, quant_unsigned_avx2};
#endif
  (void)float_level;
  return k;
}

const char* level_name(int level) {
  static const char* names[] = {"generic", "avxvnni", "avx512vnni"};
  return names[std::min(std::max(level, 0), 2)];
}

}  // namespace clarinet_int8
