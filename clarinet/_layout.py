"""Index bookkeeping shared by the launchers (Triton and CUDA): 2-D views, tap offsets.

Elementwise kernels address every input as a 2-D strided view ``(rows, cols)``
with a row stride and a column stride per tensor, so that slices such as
``y[:, 0, :]`` and ``y[:, 1, :]`` of a network output are read in place.
"""
from __future__ import annotations

import torch


def _mergeable(t: torch.Tensor, i: int) -> bool:
    # dims i and i+1 of t can be merged into one strided dim
    return t.size(i + 1) == 1 or t.size(i) == 1 or t.stride(i) == t.stride(i + 1) * t.size(i + 1)


def collapse_2d(*tensors: torch.Tensor) -> tuple[list[torch.Tensor], int, int]:
    """View same-shaped tensors as 2-D ``(rows, cols)`` tensors without copying.

    Adjacent dimensions are merged (as PyTorch's TensorIterator does) wherever
    every tensor allows it. The innermost merged group becomes the columns and
    everything before it the rows. A tensor whose leading dimensions cannot be
    merged into one strided row dimension is copied (``.contiguous()``): the
    only case where an input is copied, and one that slices of a contiguous
    tensor along a single dimension never hit.

    Returns ``(views, rows, cols)``; each view has ``view.shape == (rows, cols)``.
    """
    shape = tuple(tensors[0].shape)
    numel = tensors[0].numel()
    if len(shape) == 0 or numel == 0:
        return [t.reshape(1, numel) for t in tensors], 1, numel
    # drop size-1 dims (their strides are irrelevant), keep at least one dim
    dims = [i for i, s in enumerate(shape) if s != 1] or [len(shape) - 1]
    # group dims from the innermost outwards while all tensors can merge them
    last = dims[-1]
    inner = [last]
    for i in reversed(dims[:-1]):
        if all(t.stride(i) == t.stride(inner[0]) * t.size(inner[0]) for t in tensors):
            inner.insert(0, i)
        else:
            break
    cols = 1
    for i in inner:
        cols *= shape[i]
    rows = numel // cols
    views = []
    for t in tensors:
        col_stride = t.stride(last)
        outer = [i for i in dims if i < inner[0]]
        if not outer:
            views.append(t.as_strided((rows, cols), (0 if rows == 1 else cols * col_stride, col_stride)))
            continue
        # the outer dims must themselves form one strided dim for this tensor
        ok = all(t.stride(a) == t.stride(b) * t.size(b) for a, b in zip(outer[:-1], outer[1:]))
        if ok:
            views.append(t.as_strided((rows, cols), (t.stride(outer[-1]), col_stride)))
        else:
            views.append(t.contiguous().view(rows, cols))
    return views, rows, cols


def tap_offsets(kernel_size: int, dilation: int, causal: bool) -> list[int]:
    """Time offset of each tap: tap k of output t reads input t + offset[k]."""
    if causal:
        return [-(kernel_size - 1 - k) * dilation for k in range(kernel_size)]
    return [(k - (kernel_size - 1) // 2) * dilation for k in range(kernel_size)]
