"""Autotune support (``clarinet.kernels._tuning``): pruning, size buckets, the tuning record, and the
weight-gradient time split of ``wavenet_layer`` for large batches (it never returned for B > 512)."""
from __future__ import annotations

import importlib
import json
import os

import pytest
import torch

pytest.importorskip("triton")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from clarinet import _alloc  # noqa: E402

TUNING = importlib.import_module("clarinet.kernels._tuning")
KW = importlib.import_module("clarinet.kernels.wavenet_layer")


# ----------------------------------------------------------------------------------------------
# _wgrad_time_chunk and large batches


@pytest.mark.parametrize("B, T", [(1, 1), (2, 1030), (512, 10**6), (513, 1), (513, 4096), (600, 10**5),
                                  (10_000, 10), (4096, 3000)])
def test_wgrad_time_chunk_returns(B, T):
    chunk = KW._wgrad_time_chunk(B, T)
    assert chunk >= 1024 and chunk & (chunk - 1) == 0
    splits = B * triton.cdiv(T, chunk)
    # at most 512 splits, or one chunk per batch row when B alone exceeds that
    assert splits <= 512 or chunk >= T
    if chunk > 1024:  # the smallest chunk that does it
        half = chunk // 2
        assert B * triton.cdiv(T, half) > 512 and half < T


def test_wgrad_time_chunk_large_batch_values():
    assert KW._wgrad_time_chunk(513, 3) == 1024
    assert KW._wgrad_time_chunk(513, 5000) == 8192  # covers T: one split per row
    assert KW._wgrad_time_chunk(2, 10**6) == 4096  # unchanged: 2 * 245 splits


def test_wgrad_batch_above_split_cap(monkeypatch):
    """The weight-gradient launcher with B = 513 (one split per row) against einsum."""
    monkeypatch.setattr(_alloc, "POISON", True)
    torch.manual_seed(0)
    a, b = torch.randn(513, 3, 5), torch.randn(513, 2, 5)
    grad, bias = KW._wgrad(a, b, shift0=-1, with_bias=True)
    ref = torch.einsum("bmt,bnt->mn", a[..., 1:], b[..., :-1])[..., None]  # b[t - 1], zero at t = 0
    torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(bias, a.sum((0, 2)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("C", [0, 3])
def test_wavenet_layer_batch_above_split_cap(C, monkeypatch):
    """Forward and backward against the reference with more batch rows than the split cap (the
    regime B > 512; the cap is lowered to 2 so the interpreter runs it in seconds)."""
    from test_wavenet_layer import _check

    monkeypatch.setattr(_alloc, "POISON", True)
    monkeypatch.setattr(KW, "_WGRAD_MAX_SPLITS", 2)
    _check(5, 4, 4, 4, C, 2, 1, 3, True, False, torch.float32, "cpu")


@pytest.mark.skipif(os.environ.get("CLARINET_SLOW_TESTS") != "1",
                    reason="B = 513 through the interpreter takes minutes: set CLARINET_SLOW_TESTS=1")
def test_wavenet_layer_batch_513(monkeypatch):
    from test_wavenet_layer import _check

    monkeypatch.setattr(_alloc, "POISON", True)
    _check(513, 4, 4, 4, 3, 2, 1, 3, True, False, torch.float32, "cpu")


# ----------------------------------------------------------------------------------------------
# pruning and buckets


class _Cfg:
    def __init__(self, n):
        self.n = n


def test_prune_configs():
    cfgs = [_Cfg(n) for n in (300, 100, 200, 50)]
    est = lambda c, args: c.n * args["scale"]  # noqa: E731
    assert TUNING.prune_configs(cfgs, {"scale": 1}, est, 200) == [cfgs[1], cfgs[2], cfgs[3]]
    assert TUNING.prune_configs(cfgs, {"scale": 1}, est, None) == cfgs
    # none fits: the smallest estimate is kept (the launch then fails with Triton's message)
    assert TUNING.prune_configs(cfgs, {"scale": 10}, est, 100) == [cfgs[3]]
    # the register rule first, then the shared-memory limit
    small = lambda c, args: c.n <= 100  # noqa: E731
    assert TUNING.prune_configs(cfgs, {"scale": 1}, est, 1000, small) == [cfgs[1], cfgs[3]]
    assert TUNING.prune_configs(cfgs, {"scale": 1}, est, 1000, lambda c, a: False) == cfgs


def test_bucket():
    assert [TUNING.bucket(n) for n in (0, 1, 16, 17, 1000, 1 << 30)] == [16, 16, 16, 32, 1024, 1 << 20]
    assert TUNING.bucket(5000, lo=1 << 12, hi=1 << 18) == 8192
    assert TUNING.max_shared_memory(torch.device("cpu")) is None


def test_layer_estimates_and_ieee_rule():
    """The float32 "ieee" rule drops the 4-warp 32x32 tile and keeps 8-warp ones; estimates grow with stages."""
    args = {"R_P": 128, "S_P": 128, "C_P": 128, "K": 2, "h_ptr": object(), "x_ptr": torch.empty(0),
            "DOT_PREC": "ieee"}
    c1 = triton.Config({"BLOCK_T": 32, "BLOCK_G": 32}, num_warps=4, num_stages=1)
    c2 = triton.Config({"BLOCK_T": 32, "BLOCK_G": 32}, num_warps=8, num_stages=1)
    c3 = triton.Config({"BLOCK_T": 32, "BLOCK_G": 32}, num_warps=4, num_stages=2)
    assert not KW._act_registers(c1, args) and KW._act_registers(c2, args)
    assert KW._act_registers(c1, {**args, "DOT_PREC": "tf32"})
    assert KW._act_shared(c3, args) > KW._act_shared(c1, args) > 0
    # measured for sm_90a (tests/test_kernel_configs.py): 86,016 B and 217,344 B ("tf32")
    assert KW._act_shared(c1, args) >= 86_016
    assert KW._act_shared(c3, {**args, "DOT_PREC": "tf32"}) >= 217_344


# ----------------------------------------------------------------------------------------------
# tuning report


@triton.jit
def _scale_kernel(x_ptr, out_ptr, n, N_BUCKET, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, 2.0 * tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


def _scale(kernel, x):
    out = torch.empty_like(x)
    kernel[lambda meta: (triton.cdiv(x.numel(), meta["BLOCK"]),)](x, out, x.numel(), TUNING.bucket(x.numel()))
    return out


def test_tuning_report_records_first_launch_per_key():
    kernel = TUNING.autotune("test.scale", configs=[triton.Config({"BLOCK": 64}, num_warps=1)], key=["N_BUCKET"])(
        _scale_kernel)
    TUNING.reset_tuning_report()
    x = torch.randn(37)
    torch.testing.assert_close(_scale(kernel, x), 2 * x)
    _scale(kernel, x)  # same key: no new record
    _scale(kernel, torch.randn(60))  # same bucket (64): no new record
    report = TUNING.tuning_report()
    json.dumps(report)  # JSON-serialisable
    assert len(report) == 1
    r = report[0]
    assert set(r) == {"kernel", "key", "configs", "kept", "pruned", "best", "seconds", "bench_seconds"}
    assert r["kernel"] == "test.scale" and r["key"] == {"N_BUCKET": 64, "dtypes": ["torch.float32"] * 2}
    assert (r["configs"], r["kept"], r["pruned"], r["bench_seconds"]) == (1, 1, [], None)
    assert r["best"]["kwargs"] == {"BLOCK": 64} and r["best"]["num_warps"] == 1 and r["seconds"] >= 0
    _scale(kernel, torch.randn(65))  # a new bucket is a new key
    assert [r["key"]["N_BUCKET"] for r in TUNING.tuning_report()] == [64, 128]
    TUNING.reset_tuning_report()
    assert TUNING.tuning_report() == []


def test_elementwise_keys_are_buckets():
    from clarinet.kernels import _elementwise, gaussian_kl, gaussian_nll

    for k in (gaussian_nll._gaussian_nll_fwd_kernel, gaussian_kl._gaussian_kl_fwd_kernel):
        assert k.key_names == [*_elementwise.BUCKET_KEY, "REDUCE"]
    for k in (gaussian_nll._gaussian_nll_bwd_kernel, gaussian_kl._gaussian_kl_bwd_kernel):
        assert k.key_names == _elementwise.BUCKET_KEY
    assert _elementwise.size_buckets(3, 37) == (1024, 64)
    assert _elementwise.size_buckets(1000, 5000) == (1 << 22, 4096)


def test_tuning_report_layer_kernels():
    from test_wavenet_layer import _make_inputs

    TUNING.reset_tuning_report()
    # channel counts no other test uses: a key tuned earlier in the session is not recorded again
    inputs = _make_inputs(1, 3, 10, 9, 2, 2, 5, strided=False, dtype=torch.float32, device="cpu")
    out, skip = KW.wavenet_layer_fwd(*inputs, 1, True)
    KW.wavenet_layer_bwd(torch.randn_like(out), torch.randn_like(skip), *inputs, 1, True)
    names = [r["kernel"] for r in TUNING.tuning_report()]
    for k in ("fwd", "bwd_act", "bwd_dx", "wgrad"):
        assert f"wavenet_layer.{k}" in names
    fwd = next(r for r in TUNING.tuning_report() if r["kernel"] == "wavenet_layer.fwd")
    assert fwd["key"]["BT_BUCKET"] == 4096 and fwd["key"]["DOT_PREC"] in ("ieee", "tf32")


def test_capture_records_launches_instead_of_running():
    from clarinet.kernels import gaussian_nll as kern

    x = torch.randn(2, 8)
    with TUNING.capture() as calls:
        kern.gaussian_nll_fwd(x, x, x, -7.0, "none")
    assert len(calls) == 1 and calls[0][0].name == "gaussian_nll.fwd"


def test_iaf_flow_head_prune_rules():
    """float32 (exact dot on FMA units) keeps the tiles that did not spill for sm_90a; estimates are
    the compiled shared memory (S = 64: 16K / 24K / 40K float16, twice that float32)."""
    H = importlib.import_module("clarinet.kernels.iaf_flow_head")
    cfgs = [triton.Config({"BLOCK_T": bt}, num_warps=w) for bt in (64, 128, 256) for w in (4, 8)]
    f32 = {"BLOCK_S": 64, "EXACT_F32": True, "skips_ptr": torch.empty(0)}
    f16 = {"BLOCK_S": 64, "EXACT_F32": False, "skips_ptr": torch.empty(0, dtype=torch.float16)}
    kept = [(c.kwargs["BLOCK_T"], c.num_warps) for c in cfgs if H._registers(c, f32)]
    assert kept == [(64, 4), (64, 8), (128, 8)]
    assert all(H._registers(c, f16) for c in cfgs)
    assert [H._shared(c, f16) for c in cfgs[::2]] == [16384, 24576, 40960]
    assert H._shared(cfgs[0], f32) == 32768


def test_wavenet_sample_register_rule():
    """float32 tl.dot configs with more than 2 gate channels per warp spilled 5 to 6 KB (teacher)."""
    S = importlib.import_module("clarinet.kernels.wavenet_sample")
    cfgs = [triton.Config({"BLOCK_N": bn}, num_warps=w, num_stages=1)
            for bn, w in [(16, 4), (16, 8), (32, 8), (32, 16), (64, 8), (64, 16)]]
    ieee_dot = {"USE_DOT": True, "DOT_PREC": "ieee"}
    kept = [(c.kwargs["BLOCK_N"], c.num_warps) for c in cfgs if S._registers(c, ieee_dot)]
    assert kept == [(16, 8), (32, 16)]
    assert all(S._registers(c, {"USE_DOT": False, "DOT_PREC": "ieee"}) for c in cfgs)
    assert all(S._registers(c, {"USE_DOT": True, "DOT_PREC": "tf32"}) for c in cfgs)


def test_autotune_off_keeps_one_config(monkeypatch):
    """CLARINET_AUTOTUNE=0 (the GPU correctness run): only the first config that survives pruning."""
    cfgs = [triton.Config({"BLOCK": b}, num_warps=1) for b in (4096, 64, 128)]
    kernel = TUNING.autotune("test.scale2", configs=cfgs, key=["N_BUCKET"],
                             estimate=lambda c, a: c.kwargs["BLOCK"], registers=lambda c, a: c.kwargs["BLOCK"] < 4096)(
        _scale_kernel)
    assert kernel._prune(cfgs, {"x_ptr": torch.empty(1)}) == cfgs[1:]
    monkeypatch.setenv("CLARINET_AUTOTUNE", "0")
    assert kernel._prune(cfgs, {"x_ptr": torch.empty(1)}) == [cfgs[1]]
