"""clarinet.ops.iaf_flow_head (fused IAF head + flow composition) against its reference, and in GaussianIAF.generate."""
import pytest
import torch

from _backends import backend_device, poison_outputs
from clarinet.models import GaussianIAF
from clarinet.ops import iaf_flow_head, iaf_flow_head_ref
from clarinet.testing import assert_close

pytestmark = pytest.mark.triton  # Triton kernels: on the GPU when there is one (conftest)

DEVICE = backend_device("triton")


def inputs(B, S, T, dtype, seed=0, strided=False):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    skips = r(B, S, 2 * T if strided else T) * 2.0
    if strided:
        skips = skips[..., ::2]  # a slice of a wider tensor: read in place
    w1, b1 = r(S, S) * S ** -0.5, r(S) * 0.1
    w2, b2 = r(2, S) * 0.3 * S ** -0.5, r(2) * 0.1
    z = r(B, T)
    return [t.to(device=DEVICE, dtype=dtype) for t in (skips, w1, b1, w2, b2, z)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("B,S,T", [(1, 5, 1), (2, 16, 63), (3, 40, 129), (1, 64, 200)])
@pytest.mark.parametrize("strided", [False, True])
def test_matches_reference(monkeypatch, dtype, B, S, T, strided):
    poison_outputs(monkeypatch)
    ins = inputs(B, S, T, dtype, seed=B * S + T, strided=strided)
    with torch.no_grad():
        out = iaf_flow_head(*ins, skip_scale=0.3, backend="triton")
    ref = iaf_flow_head_ref(*ins, skip_scale=0.3, compute_dtype=torch.float64)
    assert out.shape == (B, T) and out.dtype == dtype
    assert_close(out, ref, dtype)


def test_bad_inputs():
    skips, w1, b1, w2, b2, z = inputs(2, 8, 10, torch.float32)
    with pytest.raises(ValueError, match="w_out2: expected shape"):
        iaf_flow_head(skips, w1, b1, w2[:1], b2, z, skip_scale=1.0)
    with pytest.raises(ValueError, match="z: expected shape"):
        iaf_flow_head(skips, w1, b1, w2, b2, z[:, :5], skip_scale=1.0)
    with pytest.raises(ValueError, match="skips: expected a 3-D"):
        iaf_flow_head(skips[0], w1, b1, w2, b2, z, skip_scale=1.0)
    with pytest.raises(TypeError, match="dtype"):
        iaf_flow_head(skips.half(), w1, b1, w2, b2, z, skip_scale=1.0)
    with pytest.raises(ValueError, match="skip_scale"):
        iaf_flow_head(skips, w1, b1, w2, b2, z, skip_scale=float("nan"))
    with pytest.raises(ValueError, match="inference only"):
        iaf_flow_head(skips, w1.requires_grad_(), b1, w2, b2, z, skip_scale=1.0)
    with pytest.raises(ValueError, match="has no iaf_flow_head kernel|needs CUDA tensors"):
        with torch.no_grad():
            iaf_flow_head(skips, w1, b1, w2, b2, z, skip_scale=1.0, backend="cuda")


def tiny_student(seed=0):
    torch.manual_seed(seed)
    m = GaussianIAF(flows=3, layers_per_flow=3, cycle=2, residual_channels=8, gate_channels=12, skip_channels=10,
                    kernel_size=3, n_mels=5, upsample_strides=(2, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.to(DEVICE)


@pytest.mark.parametrize("chunk", [None, 19])
def test_generate_triton_matches_forward(chunk):
    m = tiny_student()
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(2, 5, 11, generator=g).to(DEVICE)
    noise = torch.randn(2, 66, generator=g).to(DEVICE)
    with torch.no_grad():
        x_ref, _, _ = m(noise, mel)  # the reference composition through forward
        m.backend = "triton"
        x = m.generate(mel, noise, chunk=chunk)
    assert_close(x, x_ref, torch.float32)


def test_generate_16bit_close_to_float32():
    m = tiny_student(seed=3)
    g = torch.Generator().manual_seed(2)
    mel = torch.randn(1, 5, 9, generator=g).to(DEVICE)
    noise = torch.randn(1, 54, generator=g).to(DEVICE)
    with torch.no_grad():
        m.backend = "reference"
        ref = m.generate(mel, noise)
        half = m.half()
        half.backend = "triton"
        x = half.generate(mel.half(), noise.half())
    assert x.dtype == torch.float16
    assert_close(x, ref, torch.float16)
