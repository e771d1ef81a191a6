// The persistent WaveNet sampler's host side: the packed layout and shared-memory plan of a cluster,
// the choice of cluster size, batch group and resident layers for a GPU (wavenet_sampler_plan), and
// the checked launch loop over chunks (wavenet_sample_run). The kernels and the design notes are in
// wavenet_sampler.cu; the declarations both files share in wavenet_sampler.cuh.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "wavenet_sampler.cuh"

namespace clarinet_cuda {
using namespace sampler;

namespace {

using detail::check_arg;
using detail::check_cuda;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

int pow2_at_least(int v) {
  int c = 1;
  while (c < v) c <<= 1;
  return c;
}

int element_size(int dtype) { return dtype == kFloat32 ? 4 : 2; }

struct Layout {
  int g = 0, s1 = 0, rp = 0, sp = 0, xw = 0, cw_a = 1, cw_h = 1;
  int64_t h1_elems = 0, head_elems = 0, wa_elems = 0, layer_elems = 0, rank_elems = 0, fpack_elems = 0;
  int64_t ring_per_batch = 0;
};

Layout make_layout(const WavenetSamplerDims& d, int dtype, int n) {
  Layout o;
  const int64_t R = d.res_channels, G2 = d.gate_channels / 2, S = d.skip_channels, K = d.kernel_size;
  const int64_t a = 16 / element_size(dtype);  // 16 bytes in elements
  o.g = static_cast<int>((G2 + n - 1) / n);
  o.s1 = static_cast<int>((S + n - 1) / n);
  o.rp = static_cast<int>(round_up(R, 4));
  o.sp = static_cast<int>(round_up(S, 4));
  o.xw = std::max(o.rp, o.sp);
  o.cw_a = pow2_at_least(2 * o.g);
  o.cw_h = pow2_at_least(o.s1);
  o.h1_elems = round_up(S * o.s1, a);
  o.head_elems = o.h1_elems + round_up(2 * o.s1, a);
  o.wa_elems = round_up(K * R * 2 * o.g, a);
  o.layer_elems = o.wa_elems + round_up((o.g + 1) * (R + S), a);
  o.rank_elems = o.head_elems + static_cast<int64_t>(d.dilations.size()) * o.layer_elems;
  o.fpack_elems = 2 * R + 2 + n * o.s1;
  for (int64_t dl : d.dilations) o.ring_per_batch += (K - 1) * dl * o.rp;
  return o;
}

// The packed sizes of layout `o` (what clarinet/_cuda_ops.py packs the weights by) into `plan`.
void set_packed_sizes(WavenetSamplerPlan& plan, const Layout& o) {
  plan.gate_per_cta = o.g;
  plan.skip_per_cta = o.s1;
  plan.rank_elems = o.rank_elems;
  plan.head_elems = o.head_elems;
  plan.head1_elems = o.h1_elems;
  plan.wa_elems = o.wa_elems;
  plan.layer_elems = o.layer_elems;
  plan.fpack_elems = o.fpack_elems;
  plan.ring_per_batch = o.ring_per_batch;
}

SamplerSmem make_smem(const Layout& o, const WavenetSamplerDims& d, int dtype, int bg, int n_res) {
  SamplerSmem s{};
  int64_t at = 0;
  auto take = [&](int64_t bytes) {
    const int64_t here = at;
    at = round_up(at + bytes, 16);
    return here;
  };
  const int64_t K = d.kernel_size, S = d.skip_channels;
  s.w = take((o.head_elems + static_cast<int64_t>(n_res) * o.layer_elems) * element_size(dtype));
  s.xcur = take(4 * static_cast<int64_t>(bg) * o.rp);
  s.tap = take(4 * 2 * (K - 1) * bg * o.rp);
  s.xch = take(4 * 2 * static_cast<int64_t>(bg) * o.xw);
  s.skip = take(4 * static_cast<int64_t>(bg) * S);
  s.y = take(4 * static_cast<int64_t>(bg) * o.sp);
  s.z = take(4 * static_cast<int64_t>(bg) * (o.g + 1));
  s.red = take(4 * static_cast<int64_t>(kSWarps) * bg * 32);
  s.vec = take(4 * (2 * static_cast<int64_t>(o.rp) + 4 + o.s1));
  s.xt = take(4 * static_cast<int64_t>(bg));
  s.y1 = take(4 * static_cast<int64_t>(bg) * o.s1);
  s.total = at;
  return s;
}

void set_kernel_attributes(const void* kernel, int64_t smem, int cluster) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
             "wavenet_sample: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  if (cluster > 8) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
               "wavenet_sample: cudaFuncSetAttribute(NonPortableClusterSizeAllowed)");
  }
}

// A launch of `blocks` CTAs of kSThreads threads in clusters of `cluster`, `smem` dynamic shared bytes
// each, on `stream` (not copyable: cfg.attrs points at attr).
struct ClusterLaunch {
  cudaLaunchAttribute attr[1] = {};
  cudaLaunchConfig_t cfg = {};

  ClusterLaunch(int64_t blocks, int cluster, int64_t smem, cudaStream_t stream) {
    cfg.gridDim = dim3(static_cast<unsigned>(blocks));
    cfg.blockDim = dim3(kSThreads);
    cfg.dynamicSmemBytes = static_cast<std::size_t>(smem);
    cfg.stream = stream;
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = static_cast<unsigned>(cluster);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  ClusterLaunch(const ClusterLaunch&) = delete;
  ClusterLaunch& operator=(const ClusterLaunch&) = delete;
};

// false (and `error` = what failed, with the CUDA error string) unless err is cudaSuccess; clears the
// error so that the next runtime call does not report it again.
bool cuda_ok(cudaError_t err, const char* what, std::string& error) {
  if (err == cudaSuccess) return true;
  cudaGetLastError();
  error = std::string(what) + ": " + cudaGetErrorString(err);
  return false;
}

// How many clusters of `cluster` CTAs with `smem` bytes each fit on the device at once (0: none).
// A CUDA call that fails on the way also gives 0, and `error` says which and why.
int max_active_clusters(const void* kernel, int64_t smem, int cluster, std::string& error) {
  if (cluster > 8 && !cuda_ok(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1),
                              "cudaFuncSetAttribute(NonPortableClusterSizeAllowed)", error))
    return 0;
  if (!cuda_ok(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
               "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)", error))
    return 0;
  const ClusterLaunch launch(cluster, cluster, smem, nullptr);
  int n = 0;
  if (!cuda_ok(cudaOccupancyMaxActiveClusters(&n, kernel, &launch.cfg), "cudaOccupancyMaxActiveClusters", error))
    return 0;
  return n;
}

// " (error)" when a CUDA call gave one, else "": the tail of a "cannot be scheduled" reason
std::string cuda_error_note(const std::string& error) { return error.empty() ? "" : " (" + error + ")"; }

void check_dims(const WavenetSamplerDims& d, const std::string& op) {
  check_arg(d.res_channels >= 1 && d.skip_channels >= 1 && d.kernel_size >= 1 && d.cond_channels >= 0 &&
                d.gate_channels >= 2 && d.gate_channels % 2 == 0,
            op + "bad sizes (need R, S, K >= 1, C >= 0, G even >= 2), got R=" + std::to_string(d.res_channels) +
                ", G=" + std::to_string(d.gate_channels) + ", S=" + std::to_string(d.skip_channels) +
                ", K=" + std::to_string(d.kernel_size) + ", C=" + std::to_string(d.cond_channels));
  check_arg(!d.dilations.empty(), op + "at least one layer is needed");
  for (int64_t dl : d.dilations) check_arg(dl >= 1, op + "dilations must be >= 1");
}

// Why the sampler cannot take these sizes at all (independent of the device), or "".
std::string shape_limits(const WavenetSamplerDims& d) {
  const int64_t L = static_cast<int64_t>(d.dilations.size());
  if (L > kMaxSamplerLayers)
    return "the CUDA sampler takes at most " + std::to_string(kMaxSamplerLayers) + " layers, the model has " +
           std::to_string(L);
  if (d.gate_channels / 2 > int64_t(kMaxGatePerCta) * kMaxCluster)
    return "the CUDA sampler takes at most " + std::to_string(2 * kMaxGatePerCta * kMaxCluster) +
           " gate channels, the model has " + std::to_string(d.gate_channels);
  if (d.skip_channels > int64_t(kMaxSkipPerCta) * kMaxCluster)
    return "the CUDA sampler takes at most " + std::to_string(kMaxSkipPerCta * kMaxCluster) +
           " skip channels, the model has " + std::to_string(d.skip_channels);
  if (d.res_channels > 4096 || d.cond_channels > (int64_t(1) << 20) || d.kernel_size > 64)
    return "the CUDA sampler takes R <= 4096, K <= 64 (model: R=" + std::to_string(d.res_channels) +
           ", K=" + std::to_string(d.kernel_size) + ")";
  for (int64_t dl : d.dilations)
    if (dl > (int64_t(1) << 24)) return "the CUDA sampler takes dilations <= 2^24";
  return "";
}

}  // namespace

WavenetSamplerPlan wavenet_sampler_layout(const WavenetSamplerDims& d, int dtype, int cluster) {
  const std::string op = "wavenet_sampler_layout: ";
  check_dims(d, op);
  check_arg(dtype == kFloat32 || dtype == kFloat16 || dtype == kBFloat16,
            op + "dtype code must be 0, 1 or 2, got " + std::to_string(dtype));
  check_arg(cluster == 1 || cluster == 2 || cluster == 4 || cluster == 8 || cluster == 16,
            op + "cluster must be 1, 2, 4, 8 or 16, got " + std::to_string(cluster));
  const Layout o = make_layout(d, dtype, cluster);
  WavenetSamplerPlan plan;
  plan.reason = "layout only (no device was queried)";
  plan.cluster = cluster;
  set_packed_sizes(plan, o);
  plan.dtype = dtype;
  return plan;
}

WavenetSamplerPlan wavenet_sampler_plan(const WavenetSamplerDims& d, int dtype, int64_t batch, int device,
                                        int force_cluster, int force_resident) {
  const std::string op = "wavenet_sampler_plan: ";
  check_dims(d, op);
  check_arg(dtype == kFloat32 || dtype == kFloat16 || dtype == kBFloat16,
            op + "dtype code must be 0, 1 or 2, got " + std::to_string(dtype));
  check_arg(batch >= 1, op + "batch must be >= 1, got " + std::to_string(batch));
  check_arg(device >= 0, op + "negative device index");
  check_arg(force_cluster == 0 || force_cluster == 1 || force_cluster == 2 || force_cluster == 4 ||
                force_cluster == 8 || force_cluster == 16,
            op + "cluster must be 0 (auto), 1, 2, 4, 8 or 16, got " + std::to_string(force_cluster));
  WavenetSamplerPlan plan;
  plan.reason = shape_limits(d);
  if (!plan.reason.empty()) return plan;
  if (batch > 65535) {
    plan.reason = "the CUDA sampler takes batch <= 65535, got " + std::to_string(batch);
    return plan;
  }

  detail::DeviceGuard guard(device);
  int major = 0, cluster_launch = 0, max_smem = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&cluster_launch, cudaDevAttrClusterLaunch, device), "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  if (major < 9 || !cluster_launch) {
    plan.reason = "the CUDA sampler needs thread-block clusters (compute capability 9.0 or newer), device " +
                  std::to_string(device) + " has " + std::to_string(major) + ".x";
    return plan;
  }
  const int64_t L = static_cast<int64_t>(d.dilations.size());
  const int64_t G2 = d.gate_channels / 2, S = d.skip_channels;
  const int es = element_size(dtype);

  // resident layers that fit next to the head and the buffers (-1: not even those fit)
  auto resident = [&](const Layout& o, int bg) -> int64_t {
    const int64_t fixed = make_smem(o, d, dtype, bg, 0).total;
    if (fixed > max_smem) return -1;
    int64_t n = std::min<int64_t>(L, (max_smem - fixed) / (o.layer_elems * es));
    while (n > 0 && make_smem(o, d, dtype, bg, static_cast<int>(n)).total > max_smem) --n;
    return n;
  };

  // cluster size: the smallest with every layer resident that can be scheduled; else the largest
  // schedulable one (more of the weights on chip), streaming the rest from L2
  const int sizes[] = {1, 2, 4, 8, 16};
  int chosen = 0;
  std::string why = "no cluster size fits";
  if (force_cluster) {
    chosen = force_cluster;
  } else {
    int fallback = 0;
    for (int n : sizes) {
      const Layout o = make_layout(d, dtype, n);
      if (o.g > kMaxGatePerCta || o.s1 > kMaxSkipPerCta) continue;
      const int64_t nr = resident(o, 1);
      if (nr < 0) continue;
      const int64_t smem = make_smem(o, d, dtype, 1, static_cast<int>(nr)).total;
      std::string error;
      if (max_active_clusters(sampler_kernel(dtype, 1), smem, n, error) < 1) {
        why = "a cluster of " + std::to_string(n) + " CTAs with " + std::to_string(smem) +
              " bytes of shared memory each cannot be scheduled on device " + std::to_string(device) +
              cuda_error_note(error);
        continue;
      }
      if (nr == L) {
        chosen = n;
        break;
      }
      fallback = n;
    }
    if (!chosen) chosen = fallback;
  }
  if (!chosen) {
    plan.reason = "the model does not fit the CUDA sampler on this GPU (" + why + ")";
    return plan;
  }
  const Layout o = make_layout(d, dtype, chosen);
  if (o.g > kMaxGatePerCta || o.s1 > kMaxSkipPerCta) {
    plan.reason = "a cluster of " + std::to_string(chosen) + " CTAs gives " + std::to_string(o.g) +
                  " gate pairs and " + std::to_string(o.s1) + " skip channels per CTA (limits " +
                  std::to_string(kMaxGatePerCta) + ", " + std::to_string(kMaxSkipPerCta) + ")";
    return plan;
  }
  (void)G2;
  (void)S;

  // batch group: the smallest template with every element in flight at once, else 8 (groups loop)
  int bg_t = 0, n_res = 0, mc = 0;
  int64_t smem = 0;
  std::string error;  // why the first batch template that cannot be scheduled failed, if a CUDA call said
  for (int cand : {1, 2, 4, 8}) {
    int64_t nr = resident(o, cand);
    if (nr < 0) break;
    if (force_resident >= 0) nr = std::min<int64_t>(nr, force_resident);
    const int64_t sm = make_smem(o, d, dtype, cand, static_cast<int>(nr)).total;
    const int m = max_active_clusters(sampler_kernel(dtype, cand), sm, chosen, error);
    if (m < 1) break;
    bg_t = cand;
    n_res = static_cast<int>(nr);
    mc = m;
    smem = sm;
    if (static_cast<int64_t>(m) * cand >= batch) break;
  }
  if (!bg_t) {
    plan.reason = "the model does not fit the CUDA sampler on this GPU (a cluster of " + std::to_string(chosen) +
                  " CTAs cannot be scheduled with the shared memory it needs; the device allows " +
                  std::to_string(max_smem) + " bytes per CTA" + cuda_error_note(error) + ")";
    return plan;
  }
  const int64_t per_group = std::min<int64_t>(bg_t, (batch + mc - 1) / mc);
  plan.ok = true;
  plan.cluster = chosen;
  plan.batch_template = bg_t;
  plan.group_batch = static_cast<int>(per_group);
  plan.groups = (batch + per_group - 1) / per_group;
  plan.clusters = static_cast<int>(std::min<int64_t>(mc, plan.groups));
  plan.resident_layers = n_res;
  plan.smem_bytes = smem;
  set_packed_sizes(plan, o);
  plan.batch = batch;
  plan.dtype = dtype;
  return plan;
}

void wavenet_sample_run(const WavenetSamplerDims& d, const WavenetSampleArgs& a, const WavenetSamplerPlan& plan,
                        const LaunchContext& ctx) {
  const std::string op = "wavenet_sample_run: ";
  check_dims(d, op);
  check_arg(ctx.dtype == kFloat32 || ctx.dtype == kFloat16 || ctx.dtype == kBFloat16,
            op + "dtype code must be 0 (float32), 1 (float16) or 2 (bfloat16), got " + std::to_string(ctx.dtype));
  check_arg(ctx.device >= 0, op + "negative device index");
  check_arg(plan.ok, op + "the plan is not usable: " + plan.reason);
  check_arg(plan.dtype == ctx.dtype && plan.batch == a.batch, op + "the plan was made for another dtype or batch");
  const std::string lim = shape_limits(d);
  check_arg(lim.empty(), op + lim);
  const int N = plan.cluster;
  check_arg(N == 1 || N == 2 || N == 4 || N == 8 || N == 16, op + "cluster size must be 1, 2, 4, 8 or 16");
  const int bg_t = plan.batch_template;
  check_arg(bg_t == 1 || bg_t == 2 || bg_t == 4 || bg_t == 8, op + "batch template must be 1, 2, 4 or 8");
  check_arg(plan.group_batch >= 1 && plan.group_batch <= bg_t, op + "group batch must be in [1, batch template]");
  check_arg(plan.clusters >= 1 && plan.clusters <= 65535 / N, op + "bad cluster count");
  const int64_t L = static_cast<int64_t>(d.dilations.size());
  check_arg(plan.resident_layers >= 0 && plan.resident_layers <= L, op + "bad resident layer count");
  const Layout o = make_layout(d, ctx.dtype, N);
  check_arg(o.g <= kMaxGatePerCta && o.s1 <= kMaxSkipPerCta, op + "cluster too small for the gate/skip channels");
  check_arg(plan.rank_elems == o.rank_elems && plan.layer_elems == o.layer_elems && plan.head_elems == o.head_elems &&
                plan.ring_per_batch == o.ring_per_batch,
            op + "the plan does not match the model's sizes");
  const SamplerSmem sm = make_smem(o, d, ctx.dtype, bg_t, plan.resident_layers);

  const int64_t B = a.batch, T = a.time, R = d.res_channels, G = d.gate_channels, C = d.cond_channels;
  const int64_t LG = L * G;
  check_arg(B >= 1 && B <= 65535, op + "batch must be in [1, 65535], got " + std::to_string(B));
  check_arg(T >= 1, op + "time must be positive, got " + std::to_string(T));
  check_arg(a.chunk >= 1, op + "chunk must be >= 1, got " + std::to_string(a.chunk));
  const int64_t cs = std::min(a.chunk, T);
  check_arg((cs + kCondTile - 1) / kCondTile <= 65535, op + "chunk too long for the conditioning grid");
  check_arg(a.src != 0 && a.x_out != 0 && a.mean_out != 0 && a.ls_out != 0 && a.wpack != 0 && a.fpack != 0 &&
                a.bcond != 0 && a.ring != 0 && a.cond != 0 && (C == 0 || (a.h != 0 && a.wcond != 0)),
            op + "null device pointer");
  check_arg(a.wpack_numel == N * o.rank_elems, op + "packed weights must have cluster * rank_elems = " +
                                                   std::to_string(N * o.rank_elems) + " elements, got " +
                                                   std::to_string(a.wpack_numel));
  check_arg(a.fpack_numel == o.fpack_elems, op + "packed float32 vectors must have " + std::to_string(o.fpack_elems) +
                                                " elements, got " + std::to_string(a.fpack_numel));
  check_arg(a.wcond_numel == C * LG, op + "w_cond must have C * layers * G = " + std::to_string(C * LG) +
                                         " elements, got " + std::to_string(a.wcond_numel));
  check_arg(a.bcond_numel == LG, op + "b_cond must have layers * G = " + std::to_string(LG) + " elements, got " +
                                     std::to_string(a.bcond_numel));
  check_arg(a.ring_numel == B * o.ring_per_batch, op + "ring workspace must have batch * ring_per_batch = " +
                                                     std::to_string(B * o.ring_per_batch) + " float32 elements, got " +
                                                     std::to_string(a.ring_numel));
  check_arg(a.cond_numel >= B * cs * LG, op + "cond workspace must have at least batch * min(chunk, T) * layers * G = " +
                                             std::to_string(B * cs * LG) + " float32 elements, got " +
                                             std::to_string(a.cond_numel));
  check_arg(a.wpack % 16 == 0 && a.ring % 16 == 0, op + "packed weights and ring workspace must be 16-byte aligned");
  check_arg(a.step0 >= 0, op + "step0 must be >= 0, got " + std::to_string(a.step0));
  check_arg(a.prev % 4 == 0, op + "prev must be float32-aligned");
  check_arg(a.fpack % 4 == 0 && a.bcond % 4 == 0 && a.cond % 4 == 0 && a.x_out % 4 == 0 && a.mean_out % 4 == 0 &&
                a.ls_out % 4 == 0,
            op + "float32 buffers must be 4-byte aligned");
  for (int64_t s : {a.stride_h_b, a.stride_h_c, a.stride_h_t, a.stride_src_b, a.stride_src_t})
    check_arg(s >= 0, op + "negative strides are not supported");

  detail::DeviceGuard guard(ctx.device);
  int max_smem = 0;
  check_cuda(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device),
             "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  check_arg(sm.total <= max_smem, op + "the plan needs " + std::to_string(sm.total) +
                                      " bytes of shared memory per CTA, the device allows " + std::to_string(max_smem));
  const auto stream = reinterpret_cast<cudaStream_t>(ctx.stream);
  const void* kernel = sampler_kernel(ctx.dtype, bg_t);
  set_kernel_attributes(kernel, sm.total, N);

  auto run = [&](auto tag) {
    using E = decltype(tag);
    CondParams<E> cp{};
    cp.h = reinterpret_cast<const E*>(a.h);
    cp.w = reinterpret_cast<const E*>(a.wcond);
    cp.bias = reinterpret_cast<const float*>(a.bcond);
    cp.out = reinterpret_cast<float*>(a.cond);
    cp.C = C;
    cp.LG = LG;
    cp.stride_h_b = a.stride_h_b;
    cp.stride_h_c = a.stride_h_c;
    cp.stride_h_t = a.stride_h_t;
    cp.out_stride_b = cs * LG;

    SamplerParams<E> sp{};
    sp.src = reinterpret_cast<const E*>(a.src);
    sp.x_out = reinterpret_cast<float*>(a.x_out);
    sp.mean_out = reinterpret_cast<float*>(a.mean_out);
    sp.ls_out = reinterpret_cast<float*>(a.ls_out);
    sp.wpack = reinterpret_cast<const E*>(a.wpack);
    sp.fpack = reinterpret_cast<const float*>(a.fpack);
    sp.cond = reinterpret_cast<const float*>(a.cond);
    sp.ring = reinterpret_cast<float*>(a.ring);
    sp.prev = reinterpret_cast<const float*>(a.prev);
    sp.clock0 = a.step0;
    sp.batch = B;
    sp.time = T;
    sp.cond_stride_b = cs * LG;
    sp.ring_stride_b = o.ring_per_batch;
    sp.h1_elems = o.h1_elems;
    sp.head_elems = o.head_elems;
    sp.wa_elems = o.wa_elems;
    sp.layer_elems = o.layer_elems;
    sp.rank_elems = o.rank_elems;
    sp.R = static_cast<int>(R);
    sp.Rp = o.rp;
    sp.G = static_cast<int>(G);
    sp.G2 = static_cast<int>(G / 2);
    sp.S = static_cast<int>(d.skip_channels);
    sp.Sp = o.sp;
    sp.K = static_cast<int>(d.kernel_size);
    sp.L = static_cast<int>(L);
    sp.g = o.g;
    sp.S1 = o.s1;
    sp.XW = o.xw;
    sp.cw_a = o.cw_a;
    sp.cw_h = o.cw_h;
    sp.n_res = plan.resident_layers;
    sp.bg = plan.group_batch;
    sp.n_groups = (B + plan.group_batch - 1) / plan.group_batch;
    sp.stride_src_b = a.stride_src_b;
    sp.stride_src_t = a.stride_src_t;
    sp.temperature = a.temperature;
    sp.log_scale_min = a.log_scale_min;
    sp.skip_scale = static_cast<float>(std::sqrt(1.0 / static_cast<double>(L)));
    sp.forced = a.forced;
    int64_t off = 0;
    for (int64_t l = 0; l < L; ++l) {
      sp.dil[l] = static_cast<int>(d.dilations[l]);
      sp.ring_off[l] = off;
      off += (d.kernel_size - 1) * d.dilations[l] * o.rp;
    }
    sp.sm = sm;

    const ClusterLaunch launch(static_cast<int64_t>(plan.clusters) * N, N, sm.total, stream);

    for (int64_t t0 = 0; t0 < T; t0 += cs) {
      const int64_t n = std::min(cs, T - t0);
      cp.steps = n;
      cp.t0 = t0;
      const dim3 cgrid(static_cast<unsigned>((LG + kCondTile - 1) / kCondTile),
                       static_cast<unsigned>((n + kCondTile - 1) / kCondTile), static_cast<unsigned>(B));
      launch_cond(cp, cgrid, stream);
      sp.t0 = t0;
      sp.t1 = t0 + n;
      launch_sampler(launch.cfg, bg_t, sp);
    }
  };
  switch (ctx.dtype) {
    case kFloat32: run(float{}); break;
    case kFloat16: run(__half{}); break;
    default: run(__nv_bfloat16{}); break;
  }
}

}  // namespace clarinet_cuda
