"""GaussianIAF.generate in chunks equals the unchunked generation (exact borders)."""
import pytest
import torch

from clarinet.models import GaussianIAF


def random_student(seed):
    torch.manual_seed(seed)
    model = GaussianIAF(flows=3, layers_per_flow=3, cycle=3, residual_channels=8, gate_channels=16,
                        skip_channels=8, kernel_size=3, n_mels=80, backend="reference")
    with torch.no_grad():  # random everything (the default start is near x = z and the upsampler smooth)
        for p in model.parameters():
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)
    return model.eval()


@pytest.mark.parametrize("chunk", [7, 300, 1000, 1799])
def test_chunked_generation_equals_unchunked(chunk):
    model = random_student(0)
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(2, 80, 6, generator=g)
    noise = torch.randn(2, 1800, generator=g)
    full = model.generate(mel, noise, temperature=0.8)
    chunked = model.generate(mel, noise, temperature=0.8, chunk=chunk)
    assert chunked.shape == full.shape == (2, 1800)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(full, noise * 0.8, atol=1e-3), "the flows should change the noise"


def test_conditioning_slices_equal_the_full_upsampling():
    model = random_student(2)
    mel = torch.randn(1, 80, 9)
    full = model.upsampler(mel)
    for start, end in [(0, 10), (250, 950), (1234, 2700), (2000, 2700)]:
        torch.testing.assert_close(model._conditioning(mel, start, end), full[..., start:end])


def test_bad_chunk():
    model = random_student(3)
    with pytest.raises(ValueError, match="chunk"):
        model.generate(torch.randn(1, 80, 4), chunk=0)
