// int8 matrix-vector products for the C++ WaveNet sampler (csrc/cpu/int8_matvec.cpp).
//
// Weights: quantized once, per output channel, symmetric: scale[o] = max_i |W[i, o]| / 127,
// q[i, o] = round(W[i, o] / scale[o]) in [-127, 127].
// Activations: quantized per call with a dynamic scale. Signed vectors (layer inputs, gate outputs,
// conditioning) become u = round(x / s) + 128 in [1, 255] with s = max|x| / 127 (vpdpbusd multiplies
// unsigned by signed bytes; the +128 is removed with a per-column sum of the weights); non-negative
// vectors (the ReLU'd skip sum) use all 8 bits, u = round(x / s), s = max x / 255.
// Products: int32 sums of u8 x s8 (exact, in any order), on AVX-512 VNNI (vpdpbusd zmm), AVX-VNNI
// (vpdpbusd ymm) or a portable loop; the float steps around them (quantize, dequantize) are the same
// IEEE operations at every level, so every level gives bit-identical numbers.
#pragma once

#include <cstdint>
#include <vector>

namespace clarinet_int8 {

// W (nin, nout) quantized; nin padded to a multiple of 4 and nout to 16 with zeros. Layout: panels of
// outputs [o0, o0 + width) (width 128, then 64, 32, 16 as they fit: panel_width), each contiguous,
// groups of 4 inputs inside: q[4 * groups * o0 + 4 * width * (i / 4) + 4 * (o - o0) + i % 4] (one
// 64-byte load = 16 outputs x 4 inputs; a kernel's pass over one panel is one sequential stream).
struct QMatrix {
  int64_t nin = 0, nout = 0, groups = 0, nout_pad = 0;
  std::vector<int8_t> q;
  std::vector<float> scale;       // (nout_pad,), 0 in the padding
  std::vector<int32_t> shift;     // (nout_pad,): 128 * sum_i q[i, o], the offset of signed activations
  // > 0: the AVX-512 kernel prefetches this many groups ahead with the non-temporal hint (for
  // weights that are streamed from beyond L2 every step; see WaveNetSampler); 0: no prefetch
  int prefetch_nt = 0;
  static QMatrix quantize(const float* W, int64_t nin, int64_t nout);  // W row-major (nin, nout)
  int64_t bytes() const { return static_cast<int64_t>(q.size()); }
};

// Width of the panel that starts at output o0 (a panel start) of nout_pad outputs.
inline int64_t panel_width(int64_t o0, int64_t nout_pad) {
  const int64_t r = nout_pad - o0;
  return r >= 128 ? 128 : r >= 64 ? 64 : r >= 32 ? 32 : 16;
}

// out[o] = fma(float(acc[o] - (is_signed ? shift[o] : 0)), s * scale[o], base[o]) for o < nout, where
// acc[o] = sum_i u[i] * q[i, o] (int32) and u (4 * groups bytes) holds the activations quantized with
// scale s: the product and its dequantization in one pass (the sums never leave the registers).
using QMatVecFn = void (*)(const QMatrix&, const uint8_t* __restrict u, float s, bool is_signed,
                           const float* __restrict base, float* __restrict out);
// Quantize n floats into u (4 * ceil(n / 4) bytes, the padding set to the zero code); returns s.
using QuantFn = float (*)(const float* __restrict, int64_t, uint8_t* __restrict);

struct Kernels {
  int level = 0;  // 0 portable, 1 AVX-VNNI (256-bit), 2 AVX-512 VNNI
  QMatVecFn matvec;
  QuantFn quant_signed, quant_unsigned;
};

// The int8 kernels at the highest level the CPU has, capped by the float level the caller asked for
// (2 = "avx512" allows AVX-512 VNNI, then AVX-VNNI; 1 = "avx2" allows AVX-VNNI; 0 = portable).
Kernels pick_kernels(int float_level);
const char* level_name(int level);

}  // namespace clarinet_int8
