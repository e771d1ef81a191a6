"""The ``clarinet`` command line: ``clarinet bench``, ``clarinet train-teacher``, ``clarinet train-student``,
``clarinet train-text2wave``, ``clarinet synthesize``, ``clarinet vocode`` (:mod:`clarinet.vocode`) (also ``python -m clarinet ...``; the training commands
run under ``torchrun`` for several processes)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

from ._backend import BACKENDS
from ._compat import tf32_disabled
from .losses import KL_KINDS
from .training import SCHEDULES, StudentConfig, TeacherConfig, Text2WaveConfig

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _bench(args) -> int:
    from tqdm import tqdm

    from . import bench

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = args.size or ("full" if device.type == "cuda" else "small")
    dtype = DTYPES[args.dtype or ("float16" if device.type == "cuda" else "float32")]
    if dtype == torch.bfloat16 and device.type == "cpu" and "triton" in args.backends:
        print("note: Triton has no bfloat16 on the CPU", file=sys.stderr)
    if args.quick:  # the headline only: batch-1 generation, the fast backends (the AR reference never wins)
        cases = bench.headline_cases(dtype, size, configs=args.configs, quick=True)
    else:
        cases = bench.cases(ops=args.ops, configs=args.configs, modes=args.modes, dtype=dtype, size=size)
    env = bench.environment(device)
    print(f"clarinet bench on {env['device']} (torch {env['torch']}, triton {env['triton']}), "
          f"{len(cases)} cases, size {size} {bench.SIZES[size]}, {dtype}", file=sys.stderr)
    env["tf32"] = False  # float32 is full float32 for every backend, the references included
    busy = bench.load_warning(env) if device.type == "cpu" else None
    if busy:
        print(f"warning: {busy}", file=sys.stderr)
    rows = []
    start = time.monotonic()
    with tf32_disabled():
        for case in tqdm(cases, desc="bench", unit="case", file=sys.stderr, disable=args.quiet):
            if args.max_seconds is not None and time.monotonic() - start > args.max_seconds:
                rows += [dict(case=case.name, op=case.op, config=case.config, mode=case.mode,
                              dtype=str(case.dtype).replace("torch.", ""), shape=case.shape, backend=b,
                              status="skipped", reason=f"--max-seconds {args.max_seconds:g} reached")
                         for b in args.backends]
                continue
            backends = args.backends
            if args.quick and case.op == "ar_sampling":
                backends = [b for b in backends if b != "reference"]
            rows += bench.run_case(case, backends, device, min_time=args.min_time, profile_dir=args.profile)
            bench.write_record(args.out, env, rows)  # after every case: an interrupted run keeps its rows
        if not args.quick and "ar_sampling" in args.ops and "teacher-small" in args.configs:
            from .bench.serving import mixed_length_rows

            if args.max_seconds is None or time.monotonic() - start <= args.max_seconds:
                rows += mixed_length_rows("teacher-small", size, device, args.backends, min_time=args.min_time,
                                          profile_dir=args.profile)
    env["load_avg_end"] = bench.record.machine_load()["load_avg"]
    bench.write_record(args.out, env, rows)
    head = bench.headline(rows)
    if head:
        print("real-time factor (generation, batch 1, best backend per preset):\n" + head + "\n")
    if not args.quick:
        print(bench.markdown_table(rows))
        rtf = bench.rtf_table(rows)
        if rtf:
            print("\n" + rtf)
    traces = [r["trace"] for r in rows if r.get("trace")]
    if traces:
        print(f"wrote {len(traces)} torch.profiler traces (Chrome-trace JSON: ui.perfetto.dev or chrome://tracing) "
              f"to {args.profile}:")
        for t in traces:
            print(f"  {t}")
    if not args.no_plot:
        plot = args.plot or os.path.splitext(args.out)[0] + ".png"
        why = bench.plot_sampling(rows, plot, title=f"clarinet bench: {env['device']}")
        print(f"wrote {plot}" if why is None else f"no plot: {why}")
    skipped = {(r["backend"], r["reason"]) for r in rows if r["status"] == "skipped"}
    for backend, reason in sorted(skipped):
        print(f"not run: {backend}: {reason}")
    for line in bench.spread_warnings(rows):
        print(f"warning: {line}", file=sys.stderr)
    bad = [r for r in rows if r["status"] in ("wrong", "error")]
    for r in bad:
        print(f"FAILED: {r['case']} {r['backend']}: {r['status']}: {r['reason']}")
    print(f"wrote {args.out}")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    from . import bench

    from . import __version__, vocode

    p = argparse.ArgumentParser(prog="clarinet", description="ClariNet kernels and models")
    p.add_argument("--version", action="version", version=f"clarinet {__version__} (torch {torch.__version__})")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="benchmark the ops on this machine (checks each backend against the reference first)")
    b.add_argument("--ops", nargs="+", choices=bench.OPS, default=list(bench.OPS), metavar="OP",
                   help="what to time (default all): the ops wavenet_layer, gaussian_nll, gaussian_kl, iaf_flow_head; "
                        "teacher_step / student_step (a training step's loss forward and backward); ar_sampling / "
                        "iaf_sampling (generation rates of the teacher's samplers and of the student)")
    b.add_argument("--configs", nargs="+", choices=list(bench.CONFIGS), default=list(bench.CONFIGS),
                   help="wavenet_layer configurations (the reference configurations of the README)")
    b.add_argument("--modes", nargs="+", choices=bench.PASSES, default=list(bench.PASSES),
                   help="the ops' passes: fwd, or fwd+bwd (forward and backward); default both")
    b.add_argument("--backends", nargs="+", choices=bench.BENCH_BACKENDS, default=list(bench.BENCH_BACKENDS),
                   help="backends to time, each checked against the reference first (default all; those that cannot run "
                        "here are listed as not run): "
                        "reference, compile (torch.compile of the reference), triton, cuda, cpp (the C++ sampler)")
    b.add_argument("--dtype", choices=list(DTYPES), help="default: float16 on a GPU, float32 on the CPU")
    b.add_argument("--size", choices=list(bench.SIZES), help="(batch, samples); default: full on a GPU, small on the CPU")
    b.add_argument("--device", help="default: cuda when available, else cpu")
    b.add_argument("--min-time", type=float, default=0.5, help="CPU: seconds to spend timing each case (default 0.5)")
    b.add_argument("--out", default="clarinet-bench.json", help="JSON record to write (default clarinet-bench.json)")
    b.add_argument("--max-seconds", type=float, default=None,
                   help="start no new case after this many seconds (the rest are recorded as skipped)")
    b.add_argument("--plot", help="PNG of generation samples/s against batch size (default: --out with .png)")
    b.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--quick", action="store_true",
                   help="only the real-time-factor headline: batch-1 generation of each preset on the fast "
                        "backends (well under a minute on a 2-core CPU); the default is the full run")
    b.add_argument("--profile", metavar="DIR",
                   help="also write one torch.profiler trace per case and backend (Chrome-trace JSON) into DIR")
    b.set_defaults(func=_bench)
    _add_train_parsers(sub)
    _add_synthesize_parser(sub)
    vocode.add_parser(sub)
    for command in sub.choices.values():
        command.add_argument("--threads", dest="_threads", default="auto", metavar="N",
                             help="intra-op CPU threads: an integer, or auto (default) = the CPUs not busy "
                                  "(CPUs minus the 1-minute load average, at least 1; left alone when "
                                  "OMP_NUM_THREADS is set); README, 'Threads'")
    return p


# ----------------------------------------------------------------------------------------------
# training commands

_S = argparse.SUPPRESS  # flags that are not given do not override the --config file or the defaults

# model-size flags: (flag, model constructor argument, help); which apply depends on the command
_TEACHER_SIZES = [("--layers", "layers", "residual layers"),
                  ("--cycle", "cycle", "dilations 1, 2, ..., 2**(cycle-1), repeated")]
_STUDENT_SIZES = [("--flows", "flows", "IAF flows"),
                  ("--layers-per-flow", "layers_per_flow", "residual layers per flow"),
                  ("--cycle", "cycle", "dilations 1, 2, ..., 2**(cycle-1), repeated in each flow")]
_COMMON_SIZES = [("--residual-channels", "residual_channels", "residual channels"),
                 ("--gate-channels", "gate_channels", "gate channels (even)"),
                 ("--skip-channels", "skip_channels", "skip channels"),
                 ("--kernel-size", "kernel_size", "dilated convolution taps")]
_TEXT2WAVE_SIZES = [("--reduction-factor", "reduction_factor", "mel frames per decoder step"),
                    ("--embedding-dim", "embedding_dim", "character embedding and attention size (even)"),
                    ("--encoder-layers", "encoder_layers", "encoder convolution blocks"),
                    ("--encoder-channels", "encoder_channels", "encoder channels"),
                    ("--decoder-layers", "decoder_layers", "decoder (convolution, attention) blocks"),
                    ("--decoder-channels", "decoder_channels", "decoder channels"),
                    ("--bridge-layers", "bridge_layers", "bridge-net convolution blocks"),
                    ("--bridge-channels", "bridge_channels", "bridge-net channels"),
                    ("--cond-channels", "cond_channels", "vocoder conditioning channels"),
                    ("--vocoder-layers", "vocoder_layers", "vocoder residual layers"),
                    ("--vocoder-cycle", "vocoder_cycle", "vocoder dilation cycle"),
                    ("--vocoder-residual-channels", "vocoder_residual_channels", "vocoder residual channels"),
                    ("--vocoder-gate-channels", "vocoder_gate_channels", "vocoder gate channels (even)"),
                    ("--vocoder-skip-channels", "vocoder_skip_channels", "vocoder skip channels")]


def _add_train_parsers(sub) -> None:
    t = sub.add_parser("train-teacher", argument_default=_S,
                       help="train the Gaussian WaveNet teacher (maximum likelihood)",
                       description="Train the Gaussian WaveNet teacher on a folder of audio (LJSpeech layout or "
                                   "*.wav files). Run under torchrun for several processes. Settings: defaults, "
                                   "then --config FILE.json, then flags.")
    t.add_argument("data_dir", metavar="DATA_DIR", help="LJSpeech folder (metadata.csv + wavs/) or a folder of .wav files")
    _add_common_flags(t, TeacherConfig, preset_help="teacher or teacher-small (default teacher)", sizes=_TEACHER_SIZES)
    t.add_argument("--log-scale-min", type=float, help="floor of the predicted log-scale in the likelihood (default -9)")
    t.set_defaults(func=_train_teacher, _sizes=_TEACHER_SIZES)

    s = sub.add_parser("train-student", argument_default=_S,
                       help="distil the Gaussian IAF student from a teacher checkpoint",
                       description="Distil the Gaussian IAF student from a trained teacher (its EMA weights when the "
                                   "checkpoint has them; frozen). Settings: defaults, then --config FILE.json, "
                                   "then flags.")
    s.add_argument("data_dir", metavar="DATA_DIR", help="LJSpeech folder (metadata.csv + wavs/) or a folder of .wav files")
    s.add_argument("--teacher", metavar="CKPT",
                   help="teacher checkpoint: a GaussianWaveNet (train-teacher) or a TextToWave (train-text2wave), "
                        "whose vocoder is then distilled; required")
    _add_common_flags(s, StudentConfig, preset_help="student (default)", sizes=_STUDENT_SIZES)
    s.add_argument("--kl-weight", type=float, help="weight of the KL term (default 1)")
    s.add_argument("--stft-weight", type=float, help="weight of the STFT magnitude loss (default 1)")
    s.add_argument("--reg-weight", type=float, help="lambda of the (log sigma_p - log sigma_q)^2 regulariser (default 4)")
    s.add_argument("--log-scale-min", type=float, help="floor of both log-scales in the KL (default -7)")
    s.add_argument("--kind", choices=KL_KINDS, help="KL(q||p) (reverse, the paper's) or KL(p||q)")
    s.add_argument("--kl-reg-raw", dest="kl_reg_raw", action="store_const", const=True,
                   help="apply the regulariser to the raw log-scales (the peers' reading: a student log-scale "
                        "below --log-scale-min still gets its gradient) instead of the floored ones (default)")
    s.set_defaults(func=_train_student, _sizes=_STUDENT_SIZES)

    w = sub.add_parser("train-text2wave", argument_default=_S,
                       help="train the text-to-wave model (encoder, decoder, bridge-net, vocoder) jointly from scratch",
                       description="Train ClariNet's text-to-wave model from scratch on an LJSpeech-layout folder "
                                   "(metadata.csv + wavs/): L1 on log-mel and log-linear spectrograms, end-flag BCE, "
                                   "the vocoder's likelihood on a random segment per utterance, and a guided-attention "
                                   "term. Run under torchrun for several processes. Settings: defaults, then "
                                   "--config FILE.json, then flags.")
    w.add_argument("data_dir", nargs="?", metavar="DATA_DIR", help="LJSpeech folder (or give --data)")
    w.add_argument("--data", dest="data_dir", metavar="DIR", help="LJSpeech folder (metadata.csv + wavs/)")
    _add_common_flags(w, Text2WaveConfig, preset_help="text2wave (default) or text2wave-tiny", sizes=_TEXT2WAVE_SIZES,
                      common_sizes=False, segment_help="vocoder segment per utterance in samples, a multiple of the hop",
                      batch_help="utterances per step per process")
    w.add_argument("--mel-weight", type=float, help="weight of the log-mel L1 (default 1)")
    w.add_argument("--linear-weight", type=float, help="weight of the log-linear L1 (default 1)")
    w.add_argument("--done-weight", type=float, help="weight of the end-flag cross-entropy (default 1)")
    w.add_argument("--vocoder-weight", type=float, help="weight of the vocoder's negative log-likelihood (default 1)")
    w.add_argument("--attention-weight", type=float, help="weight of the guided-attention term; 0 disables (default 1)")
    w.add_argument("--attention-sigma", type=float, help="width of the guided-attention diagonal (default 0.2)")
    w.add_argument("--log-scale-min", type=float, help="floor of the vocoder's log-scale in the likelihood (default -9)")
    w.add_argument("--max-text-length", type=int, help="leave out utterances with more symbols (default: the model's limit)")
    w.set_defaults(func=_train_text2wave, _sizes=_TEXT2WAVE_SIZES, _common_sizes=[])


def _add_common_flags(p, config_cls, *, preset_help, sizes, common_sizes=True,
                      segment_help="audio samples per training segment, a multiple of the hop",
                      batch_help="segments per step per process") -> None:
    import dataclasses

    d = {f.name: f.default for f in dataclasses.fields(config_cls)}  # the help shows the command's own defaults
    p.add_argument("--out", dest="out_dir", metavar="DIR", help="output folder: checkpoints, train-log.jsonl; required")
    p.add_argument("--config", dest="_config", metavar="FILE.json",
                   help="JSON object of settings (the field names of the config dataclass); flags override it")
    p.add_argument("--preset", help=preset_help)
    for flag, _, help_ in sizes + (_COMMON_SIZES if common_sizes else []):
        p.add_argument(flag, type=int, metavar="N", dest="_size_" + flag[2:].replace("-", "_"), help=help_ + " (default: the preset's)")
    p.add_argument("--segment-samples", type=int, help=f"{segment_help} (default {d['segment_samples']})")
    p.add_argument("--batch-size", type=int, help=f"{batch_help} (default {d['batch_size']})")
    p.add_argument("--steps", type=int, help=f"total optimizer steps (default {d['steps']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {config_cls.BASE_LR:g} x sqrt(min(1, batch size / "
                                            f"{config_cls.BASE_BATCH})): smaller batches, smaller steps)")
    p.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"), help="AdamW betas (default 0.9 0.999)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay of matrices (default 0)")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="after warm-up: halve every --lr-half-life steps, cosine to --min-lr, or constant "
                        f"(default {d['schedule']})")
    p.add_argument("--warmup-steps", type=int,
                   help=f"linear warm-up steps (default min({config_cls.MAX_WARMUP}, steps / 10))")
    p.add_argument("--lr-half-life", type=int, help=f"exponential schedule: steps per halving (default {d['lr_half_life']})")
    p.add_argument("--min-lr", type=float, help=f"learning-rate floor after warm-up (default {d['min_lr']:g})")
    p.add_argument("--clip", type=float, help=f"gradient clipping max norm; 0 disables (default {d['clip']:g})")
    p.add_argument("--ema", type=float, help=f"EMA decay of the weights; 0 disables (default {d['ema']:g})")
    p.add_argument("--bf16", action="store_const", const=True, help="bf16 autocast (CUDA only; ignored on the CPU)")
    p.add_argument("--log-every", type=int, help=f"steps between log lines (default {d['log_every']})")
    p.add_argument("--ckpt-every", type=int,
                   help=f"steps between checkpoints (default {d['ckpt_every']}); one is also written at the end")
    p.add_argument("--keep", type=int, help=f"checkpoints kept (the newest; default {d['keep']})")
    p.add_argument("--seed", type=int, help="seed of weights, data order, segments and noise (default 0)")
    p.add_argument("--backend", choices=BACKENDS, help="op backend (default auto)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default cuda when available; under torchrun cuda:LOCAL_RANK)")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes (default 0)")
    p.add_argument("--cache-dir", help="log-mel cache folder (default DATA_DIR/.clarinet-mel-cache)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bar")
    p.add_argument("--resume", metavar="CKPT",
                   help="checkpoint to resume from (default: the newest in --out, if any)")
    p.add_argument("--val-fraction", type=float, metavar="F",
                   help="hold out this fraction of the utterances (chosen with --seed) and log their loss "
                        f"(default {d['val_fraction']:g}: none)")
    p.add_argument("--val-every", type=int, metavar="N",
                   help="steps between validation losses (default: at every checkpoint)")
    p.add_argument("--sample-every", type=int, metavar="N",
                   help="every N steps write OUT/samples/step-N.wav and a spectrogram .png (matplotlib) generated "
                        "from a held-out utterance (default 0: never)")
    p.add_argument("--sample-seconds", type=float, metavar="S",
                   help=f"longest sample in seconds (default {d['sample_seconds']:g})")


def _train_settings(args) -> tuple[dict, str | None]:
    values = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("func", "command")}
    model = {arg: getattr(args, "_size_" + flag[2:].replace("-", "_"))
             for flag, arg, _ in args._sizes + getattr(args, "_common_sizes", _COMMON_SIZES)
             if hasattr(args, "_size_" + flag[2:].replace("-", "_"))}
    if model:
        values["model"] = model
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return values, getattr(args, "_config", None)


class _TqdmHandler(logging.Handler):
    """Log records written with ``tqdm.write`` so that they do not break the progress bar."""

    def emit(self, record):
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _setup_logging() -> None:
    log = logging.getLogger("clarinet")
    if not any(isinstance(h, _TqdmHandler) for h in log.handlers):
        h = _TqdmHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
    log.setLevel(logging.INFO)


def _run_training(args, config_cls, train_fn) -> int:
    import shlex

    from .training import ConfigError, TrainingInterrupted

    values, config_file = _train_settings(args)
    _setup_logging()
    try:
        cfg = config_cls.from_sources(config_file, **values)
        result = train_fn(cfg)
    except ConfigError as e:
        print(f"clarinet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        if e.checkpoint is not None:  # rank 0
            again = shlex.join(["clarinet", *getattr(args, "_argv", [args.command])])
            print(f"clarinet {args.command}: {e}.\nResume with the same command; it continues from the newest "
                  f"checkpoint in {cfg.out_dir}:\n  {again}", file=sys.stderr)
        return 128 + e.signum
    if result.checkpoint is not None:
        print(f"step {result.step}: {result.checkpoint}")
    return 0


def _train_teacher(args) -> int:
    from .training import TeacherConfig, train_teacher

    return _run_training(args, TeacherConfig, train_teacher)


def _train_student(args) -> int:
    from .training import StudentConfig, train_student

    return _run_training(args, StudentConfig, train_student)


def _train_text2wave(args) -> int:
    from .training import Text2WaveConfig, train_text2wave

    return _run_training(args, Text2WaveConfig, train_text2wave)


# ----------------------------------------------------------------------------------------------
# synthesis

def _add_synthesize_parser(sub) -> None:
    y = sub.add_parser("synthesize", help="text to a 16-bit wav with a train-text2wave checkpoint",
                       description="Synthesise speech from text with a TextToWave checkpoint (its EMA weights when "
                                   "it has them): the decoder runs step by step with the monotonic attention window, "
                                   "then the model's autoregressive WaveNet (or, with --student, a distilled IAF) "
                                   "makes the audio at the model's sample rate.")
    y.add_argument("--checkpoint", required=True, metavar="CKPT", help="TextToWave checkpoint (from train-text2wave)")
    src = y.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="the text to say")
    src.add_argument("--text-file", metavar="FILE", help="UTF-8 text file, one utterance per line (blank lines skipped)")
    y.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="wav to write; with --text-file: OUT-1.wav, OUT-2.wav ... beside OUT, or 1.wav, 2.wav ... "
                        "inside OUT when it is a folder (or ends with /)")
    y.add_argument("--student", metavar="CKPT", help="GaussianIAF checkpoint distilled from this model (parallel generation)")
    y.add_argument("--plot", metavar="PNG", help="also plot the alignment and the spectrograms (needs matplotlib)")
    y.add_argument("--max-frames", type=int, help="decoder frame limit per utterance (default: the model's)")
    y.add_argument("--temperature", type=float, default=1.0, help="noise scale of the vocoder (default 1)")
    y.add_argument("--backend", default="auto", help="autoregressive sampler backend: auto, cpp, reference, cuda, triton")
    y.add_argument("--device", help="cpu, cuda ... (default cuda when available)")
    y.add_argument("--seed", type=int, default=0, help="seed of the vocoder noise (default 0)")
    y.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="--text-file: utterances vocoded together, as one batch of mixed lengths (default 8; "
                        "each wave is what that utterance alone gives with the same noise)")
    y.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    y.set_defaults(func=_synthesize)


def _numbered(path, i: int, n: int, suffix: str = ".wav"):
    """The i-th (1-based) output of n: ``path`` itself for a single one, else ``stem-i.suffix`` or
    ``folder/i.suffix`` (a folder is created)."""
    from pathlib import Path

    p = Path(path)
    if str(path).endswith(("/", os.sep)) or p.is_dir():
        p.mkdir(parents=True, exist_ok=True)
        return p / f"{i}{suffix}"
    if n == 1:
        return p
    return p.with_name(f"{p.stem}-{i}{p.suffix or suffix}")


def _synthesize(args) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from . import checkpoint as ck
    from .audio import save_audio

    def fail(msg) -> int:
        print(f"clarinet synthesize: error: {msg}", file=sys.stderr)
        return 2

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = ck.load_model(args.checkpoint, "TextToWave", map_location=device)
    except (FileNotFoundError, ValueError) as e:
        return fail(f"--checkpoint: {e}")
    student = None
    if args.student:
        try:
            student = ck.load_model(args.student, "GaussianIAF", map_location=device)
        except (FileNotFoundError, ValueError) as e:
            return fail(f"--student: {e}")
        if student.n_mels != model.cond_channels or student.hop_length != model.hop_length:
            return fail(f"--student: {args.student!r} is conditioned on {student.n_mels} channels at hop "
                        f"{student.hop_length}, not on this model's bridge-net ({model.cond_channels} channels, hop "
                        f"{model.hop_length}); distil it from this checkpoint (train-student --teacher)")
    if args.text is not None:
        texts = [args.text]
    else:
        try:
            with open(args.text_file, encoding="utf-8") as f:
                texts = [line.strip() for line in f if line.strip()]
        except OSError as e:
            return fail(f"--text-file: {e}")
        except UnicodeDecodeError as e:
            return fail(f"--text-file: {args.text_file!r} is not UTF-8 text ({e})")
        if not texts:
            return fail(f"--text-file: {args.text_file!r} holds no text")
    from .plotting import have_matplotlib, synthesis_png

    plot_ok = args.plot is not None
    if plot_ok:
        if not have_matplotlib():
            print("clarinet synthesize: --plot needs matplotlib, which is not installed (pip install matplotlib); "
                  "writing the audio without a plot", file=sys.stderr)
            plot_ok = False
    if args.batch_size < 1:
        return fail(f"--batch-size: expected an int >= 1, got {args.batch_size}")
    for i, text in enumerate(texts, start=1):  # every line checked before any audio is made
        try:
            model.text_ids(text)
        except ValueError as e:
            return fail(f"{'--text' if args.text is not None else f'--text-file line {i}'}: {e}")
    torch.manual_seed(args.seed)
    bar = tqdm(total=len(texts), desc="synthesize", unit="utt", disable=not args.progress or len(texts) == 1,
               file=sys.stderr)
    for b0 in range(0, len(texts), args.batch_size):
        batch = texts[b0:b0 + args.batch_size]
        waves, sr, details = model.synthesize(batch, vocoder=student, max_frames=args.max_frames,
                                              temperature=args.temperature, backend=args.backend,
                                              progress=args.progress and len(texts) == 1, return_details=True)
        for i, (text, audio, det) in enumerate(zip(batch, waves, details), start=b0 + 1):
            out = _numbered(args.out, i, len(texts))
            save_audio(out, audio, sr)
            print(f"wrote {out} ({audio.numel() / sr:.2f} s at {sr} Hz, {det['done'].numel()} decoder steps)")
            if plot_ok:
                png = _numbered(args.plot, i, len(texts), ".png")
                synthesis_png(png, det, sr, model.hop_length, text if len(text) <= 60 else text[:57] + "...")
                print(f"wrote {png}")
        bar.update(len(batch))
    bar.close()
    return 0


def main(argv=None) -> int:
    from ._threads import set_threads

    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)
    before = torch.get_num_threads()
    try:
        set_threads(args._threads)
    except ValueError as e:
        parser.error(f"--threads: {e}")
    try:
        return args.func(args)
    finally:  # main() called in-process (tests, notebooks) leaves the caller's setting as it was
        torch.set_num_threads(before)


if __name__ == "__main__":
    sys.exit(main())
