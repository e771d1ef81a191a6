"""Triton kernels of clarinet, installed as ``clarinet.kernels`` (one module per op)."""
