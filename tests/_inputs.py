"""Random inputs for the elementwise loss tests, in several memory layouts."""
import zlib

import torch

LAYOUTS = [
    ("contiguous", (1,)),
    ("contiguous", (3, 129)),
    ("channel-slices", (2, 1000)),
    ("transposed", (5, 63)),
    ("strided", (2, 3, 257)),
]


def seed_of(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def loss_inputs(n, layout, shape, dtype, device, seed):
    """``n`` same-shaped tensors ~N(0, 1) laid out as ``layout`` says.

    channel-slices: inputs 1.. are channel slices y[:, i] of one (B, n-1, T)
    tensor, as a network's mean/log-scale outputs are.
    """
    g = torch.Generator().manual_seed(seed)
    if layout == "contiguous":
        ts = [torch.randn(shape, generator=g) for _ in range(n)]
    elif layout == "channel-slices":
        y = torch.randn(shape[0], n - 1, *shape[1:], generator=g)
        ts = [torch.randn(shape, generator=g)] + [y[:, i] for i in range(n - 1)]
    elif layout == "transposed":
        ts = [torch.randn(tuple(reversed(shape)), generator=g).transpose(0, -1) for _ in range(n)]
    elif layout == "strided":
        ts = [torch.randn(*shape[:-1], 2 * shape[-1], generator=g)[..., ::2] for _ in range(n)]
    else:
        raise ValueError(layout)
    return [t.to(device=device, dtype=dtype) for t in ts]
