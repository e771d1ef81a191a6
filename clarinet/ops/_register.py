"""Autograd wiring shared by the custom ops.

Each op is two ``torch.library`` custom ops: ``clarinet::<op>`` (forward) and
``clarinet::<op>_backward``. The forward's leading ``n_tensors`` arguments are
tensors (optional ones may be None); the rest (sizes, flags, the backend name)
are passed to the backward unchanged. The backward op receives the upstream
gradients, then the saved tensor inputs, then those extra arguments, and
returns one gradient per tensor input that was given (None inputs get none).
"""
from __future__ import annotations


def register_autograd(op, backward_op, n_tensors: int) -> None:
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_tensors])
        ctx.extra = tuple(inputs[n_tensors:])

    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        computed = iter(backward_op(*grads, *saved, *ctx.extra))
        tensor_grads = [None if t is None else next(computed) for t in saved]
        return (*tensor_grads, *([None] * len(ctx.extra)))

    op.register_autograd(backward, setup_context=setup_context)
