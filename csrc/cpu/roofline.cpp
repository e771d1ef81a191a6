// Single-thread peak rates of this core, from short calibrated loops (clarinet.roofline):
// float32 FMA (AVX-512F zmm, else AVX2 ymm) and int8 vpdpbusd (AVX-512 VNNI zmm, else AVX-VNNI ymm).
// Each loop runs 16 independent accumulator chains (enough to cover the FMA / vpdpbusd latency at
// full throughput), is lengthened until one run takes >= min_seconds, and the best of `repeats`
// runs is kept. Rates are multiply-adds per second (a float32 FMA lane = 1, a vpdpbusd lane = 4).
// Also the read bandwidth of one core from buffers of given sizes (sequential 64-byte loads summed
// into 8 accumulators, the buffer swept again and again): what a sampler whose weights per step
// do not fit in L2 can stream.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CLARINET_X86 1
#endif

namespace py = pybind11;

namespace {

volatile float g_sink_f = 0.0f;
volatile int32_t g_sink_i = 0;

#if defined(CLARINET_X86)
__attribute__((target("avx512f"))) double fma512(int64_t n) {
  __m512 a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm512_set1_ps(1.0f + 1e-3f * j);
  const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 16; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  __m512 s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, a[j]);
  g_sink_f = _mm512_reduce_add_ps(s);
  return static_cast<double>(n) * 16 * 16;
}

__attribute__((target("avx2,fma"))) double fma256(int64_t n) {
  __m256 a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm256_set1_ps(1.0f + 1e-3f * j);
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 16; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  __m256 s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm256_add_ps(s, a[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  g_sink_f = out[0];
  return static_cast<double>(n) * 16 * 8;
}

__attribute__((target("avx512f,avx512vnni"))) double vnni512(int64_t n) {
  __m512i a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm512_set1_epi32(j);
  const __m512i u = _mm512_set1_epi32(0x01020304), w = _mm512_set1_epi32(0x01ff01ff);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 16; ++j) a[j] = _mm512_dpbusd_epi32(a[j], u, w);
  __m512i s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_epi32(s, a[j]);
  g_sink_i = _mm512_reduce_add_epi32(s);
  return static_cast<double>(n) * 16 * 64;
}

__attribute__((target("avx2,avxvnni"))) double vnni256(int64_t n) {
  __m256i a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm256_set1_epi32(j);
  const __m256i u = _mm256_set1_epi32(0x01020304), w = _mm256_set1_epi32(0x01ff01ff);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 16; ++j) a[j] = _mm256_dpbusd_avx_epi32(a[j], u, w);
  __m256i s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm256_add_epi32(s, a[j]);
  g_sink_i = _mm256_extract_epi32(s, 0);
  return static_cast<double>(n) * 16 * 32;
}
#endif

#if defined(CLARINET_X86)
const int8_t* g_stream = nullptr;
int64_t g_stream_bytes = 0;

// Bytes read: n sweeps over g_stream (g_stream_bytes, a multiple of 512).
__attribute__((target("avx512f"))) double sweep512(int64_t n) {
  __m512i a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm512_setzero_si512();
  for (int64_t r = 0; r < n; ++r)
    for (const int8_t* p = g_stream; p < g_stream + g_stream_bytes; p += 512)
      for (int j = 0; j < 8; ++j) a[j] = _mm512_add_epi32(a[j], _mm512_loadu_si512(p + 64 * j));
  __m512i s = a[0];
  for (int j = 1; j < 8; ++j) s = _mm512_add_epi32(s, a[j]);
  g_sink_i = _mm512_reduce_add_epi32(s);
  return static_cast<double>(n) * g_stream_bytes;
}

__attribute__((target("avx2"))) double sweep256(int64_t n) {
  __m256i a[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_si256();
  for (int64_t r = 0; r < n; ++r)
    for (const int8_t* p = g_stream; p < g_stream + g_stream_bytes; p += 256)
      for (int j = 0; j < 8; ++j)
        a[j] = _mm256_add_epi32(a[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * j)));
  __m256i s = a[0];
  for (int j = 1; j < 8; ++j) s = _mm256_add_epi32(s, a[j]);
  g_sink_i = _mm256_extract_epi32(s, 0);
  return static_cast<double>(n) * g_stream_bytes;
}
#endif

// Multiply-adds per second of `loop`, lengthened until a run takes min_seconds; best of repeats.
double rate(double (*loop)(int64_t), double min_seconds, int repeats) {
  using clock = std::chrono::steady_clock;
  int64_t n = 1024;
  for (;;) {
    const auto t0 = clock::now();
    loop(n);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt >= min_seconds || n > (int64_t(1) << 40)) break;
    n *= 2;
  }
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = clock::now();
    const double macs = loop(n);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::max(best, macs / dt);
  }
  return best;
}

py::dict roofline(double min_seconds, int repeats, std::vector<int64_t> read_sizes) {
  py::dict out;
  py::dict reads;  // buffer bytes -> bytes read per second
  out["fma_isa"] = "none";
  out["fma_macs_per_s"] = 0.0;
  out["vnni_isa"] = "none";
  out["vnni_macs_per_s"] = 0.0;
#if defined(CLARINET_X86)
  py::gil_scoped_release release;
  __builtin_cpu_init();
  double fma = 0.0, vnni = 0.0;
  const char *fisa = "none", *visa = "none";
  if (__builtin_cpu_supports("avx512f")) {
    fma = rate(fma512, min_seconds, repeats);
    fisa = "avx512";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    fma = rate(fma256, min_seconds, repeats);
    fisa = "avx2";
  }
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni")) {
    vnni = rate(vnni512, min_seconds, repeats);
    visa = "avx512vnni";
  } else if (__builtin_cpu_supports("avxvnni")) {
    vnni = rate(vnni256, min_seconds, repeats);
    visa = "avxvnni";
  }
  std::vector<double> read_rates;
  const bool avx2 = __builtin_cpu_supports("avx2");
  for (int64_t size : read_sizes) {
    const int64_t bytes = std::max<int64_t>(512, size / 512 * 512);
    std::vector<int8_t> buf(static_cast<size_t>(bytes), 1);
    g_stream = buf.data();
    g_stream_bytes = bytes;
    const bool z = __builtin_cpu_supports("avx512f");
    read_rates.push_back(z ? rate(sweep512, min_seconds, repeats) : avx2 ? rate(sweep256, min_seconds, repeats) : 0.0);
  }
  py::gil_scoped_acquire acquire;
  for (size_t i = 0; i < read_sizes.size(); ++i) reads[py::int_(read_sizes[i])] = read_rates[i];
  out["read_bytes_per_s"] = reads;
  out["fma_isa"] = fisa;
  out["fma_macs_per_s"] = fma;
  out["vnni_isa"] = visa;
  out["vnni_macs_per_s"] = vnni;
#else
  (void)min_seconds;
  (void)repeats;
  (void)read_sizes;
  out["read_bytes_per_s"] = reads;
#endif
  return out;
}

}  // namespace

void register_roofline(py::module_& m) {
  m.def("roofline", &roofline, py::arg("min_seconds") = 0.05, py::arg("repeats") = 3,
        py::arg("read_sizes") = std::vector<int64_t>{},
        "Single-thread peak multiply-adds per second: float32 FMA (fma_isa, fma_macs_per_s) and int8 "
        "vpdpbusd (vnni_isa, vnni_macs_per_s), from calibrated loops of 16 independent chains; "
        "read_bytes_per_s: {buffer bytes: bytes read per second} for each of read_sizes.");
}
