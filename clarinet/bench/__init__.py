"""Benchmarks shared by ``clarinet bench`` and the pytest-benchmark suites (``benchmarks/``).

A case is (op, configuration, pass, dtype, shape). For each backend the case first checks the
backend's outputs (and, for "fwd+bwd", every gradient) against the float32 reference on the same
inputs, and only then times it. Backends: "reference" (PyTorch eager), "compile" (torch.compile of
the reference), "triton", "cuda", and "cpp" (the C++ AR sampler).

Rooms: :mod:`.cases` (the reference configurations, shapes, counts, inputs), :mod:`.run` (running,
checking and timing a case on a backend, generation included), :mod:`.record` (the JSON record:
machine, versions, rows, Triton tuning), :mod:`.report` (markdown tables, the real-time-factor headline
and the PNG), :mod:`.serving` (the mixed-length batch row).
"""
from .cases import (BENCH_BACKENDS, CONFIGS, DILATION, LAYER_CONFIGS, OPS, PASSES, QUICK_AR_SAMPLES,  # noqa: F401
                    REFERENCE_SAMPLES, SAMPLE_RATE, SAMPLING_PRESETS, SAMPLING_SIZES, SIZES, STEP_PRESETS, STEP_SIZES,
                    Case, cases, headline_cases, make_inputs)
from .record import (WIDE_SPREAD, environment, load_warning, machine_load, spread_warnings, tuning_report,  # noqa: F401
                     write_record)
from .report import headline, markdown_table, plot_sampling, rtf_table  # noqa: F401
from .run import (check, run_case, runner, sampling_check, sampling_fn, sampling_setup, time_fn,  # noqa: F401
                  unavailable)
