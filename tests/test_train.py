"""Training: the train-teacher / train-student commands on a synthetic corpus with tiny models.

Everything runs on the CPU with the reference backend; the corpus is a few chirps written with soundfile.
"""
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from clarinet import checkpoint as ck
from clarinet.cli import main
from clarinet.models import GaussianIAF, GaussianWaveNet
from clarinet.train import (ConfigError, EMA, StudentConfig, TeacherConfig, lr_factor, train_student,
                            train_teacher)

SR = 24000
SEGMENT = 1200  # 4 frames of hop 300; > n_fft / 2 as the STFT loss needs
TEACHER_SIZES = ["--layers", "3", "--cycle", "3", "--residual-channels", "8", "--gate-channels", "16",
                 "--skip-channels", "8"]
STUDENT_SIZES = ["--flows", "2", "--layers-per-flow", "3", "--cycle", "3", "--residual-channels", "8",
                 "--gate-channels", "16", "--skip-channels", "8"]
TEACHER_MODEL = dict(layers=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sf):
    """Five 0.5 s chirps (a wav folder) at 24 kHz."""
    root = tmp_path_factory.mktemp("corpus")
    t = np.arange(SR // 2) / SR
    for i in range(5):
        f0 = 150.0 + 70.0 * i
        x = 0.5 * np.sin(2 * np.pi * (f0 * t + 150.0 * t ** 2))
        sf.write(root / f"utt{i}.wav", x.astype(np.float32), SR)
    return root


def teacher_argv(data, out, *extra):
    return ["train-teacher", str(data), "--out", str(out), *TEACHER_SIZES, "--segment-samples", str(SEGMENT),
            "--batch-size", "2", "--warmup-steps", "0", "--backend", "reference", "--device", "cpu",
            "--no-progress", *extra]


def teacher_config(data, out, **kw):
    base = dict(data_dir=str(data), out_dir=str(out), model=dict(TEACHER_MODEL), segment_samples=SEGMENT,
                batch_size=2, warmup_steps=0, backend="reference", device="cpu", progress=False)
    return TeacherConfig.from_sources(**{**base, **kw})


def read_log(out):
    with open(out / "train-log.jsonl") as f:
        return [json.loads(line) for line in f]


def step_files(out):
    return [s for s, _ in ck.list_checkpoints(out)]


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def teacher_ckpt(corpus, tmp_path_factory):
    """A teacher trained 40 steps (EMA on) through the library call."""
    out = tmp_path_factory.mktemp("teacher")
    result = train_teacher(teacher_config(corpus, out, steps=40, lr=3e-3, ema=0.9, log_every=10, ckpt_every=40))
    return result.checkpoint


# ----------------------------------------------------------------------------------------------
# train-teacher through the CLI

def test_cli_teacher_writes_checkpoints_resumes_and_keeps_the_last(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(teacher_argv(corpus, out, "--steps", "4", "--ckpt-every", "2", "--log-every", "1",
                             "--keep", "2")) == 0
    assert step_files(out) == [2, 4]
    assert str(out / "step-000004.pt") in capsys.readouterr().out
    ckpt = ck.load_checkpoint(out / "step-000004.pt")
    assert ckpt["kind"] == "GaussianWaveNet" and ckpt["step"] == 4
    assert ckpt["extra"]["train_config"]["steps"] == 4 and ckpt["extra"]["audio"]["sample_rate"] == SR
    assert ckpt["ema"]["num_updates"] == 4
    model = ck.load_model(out / "step-000004.pt", GaussianWaveNet)
    assert model.config["layers"] == 3 and model.config["backend"] == "reference"

    # a second run with more steps resumes from step 4 (automatically: the newest in --out)
    assert main(teacher_argv(corpus, out, "--steps", "7", "--ckpt-every", "2", "--log-every", "1",
                             "--keep", "2")) == 0
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4, 5, 6, 7]
    assert step_files(out) == [6, 7]  # keep the newest 2
    ckpt = ck.load_checkpoint(out / "step-000007.pt")
    assert ckpt["optimizer"]["state"][0]["step"].item() == 7
    assert ckpt["scheduler"]["last_epoch"] == 7 and ckpt["ema"]["num_updates"] == 7

    # nothing left to do: returns at once, writes nothing
    assert main(teacher_argv(corpus, out, "--steps", "7")) == 0
    assert step_files(out) == [6, 7]

    # --resume PATH picks an explicit checkpoint
    out2 = tmp_path / "branch"
    assert main(teacher_argv(corpus, out2, "--steps", "8", "--resume", str(out / "step-000006.pt"),
                             "--log-every", "1")) == 0
    assert [r["step"] for r in read_log(out2)] == [7, 8]


def test_interrupted_run_resumes_and_matches_the_uninterrupted_one(corpus, tmp_path, monkeypatch):
    """steps=6, checkpoints every 2, an exception in step 5: the checkpoint of step 4 survives and a
    resumed run ends with exactly the weights (and EMA) of a run that was never interrupted."""
    import clarinet.losses

    settings = dict(steps=6, ckpt_every=2, log_every=1, ema=0.9, lr=3e-3, weight_decay=0.01, warmup_steps=2)
    # 5 utterances, batch 2: 3 batches per epoch, so step 4 is in the middle of the second epoch
    full = train_teacher(teacher_config(corpus, tmp_path / "full", **settings))

    real_loss = clarinet.losses.teacher_loss
    calls = []

    def failing_loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("power cut (simulated)")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(clarinet.losses, "teacher_loss", failing_loss)
    out = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="power cut"):
        train_teacher(teacher_config(corpus, out, **settings))
    monkeypatch.undo()
    assert step_files(out) == [2, 4]
    assert ck.latest_checkpoint(out) == out / "step-000004.pt"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    resumed = train_teacher(teacher_config(corpus, out, **settings))
    assert resumed.step == 6 and [r["step"] for r in resumed.history] == [5, 6]
    assert states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert states_equal(resumed.ema.shadow, full.ema.shadow)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history[4:]]


def test_signal_finishes_the_step_checkpoints_and_resumes_to_the_same_weights(corpus, tmp_path, monkeypatch):
    """SIGINT during step 5 (of 6, checkpoints every 4): the step completes, step-000005.pt is written,
    TrainingInterrupted says so, and resuming ends with the weights of a run never interrupted."""
    import signal

    import clarinet.losses
    from clarinet.training import TrainingInterrupted

    settings = dict(steps=6, ckpt_every=4, log_every=2, ema=0.9, lr=3e-3, warmup_steps=2)
    full = train_teacher(teacher_config(corpus, tmp_path / "full", **settings))
    real_loss = clarinet.losses.teacher_loss
    calls = []

    def interrupted_loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of a step
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(clarinet.losses, "teacher_loss", interrupted_loss)
    out = tmp_path / "interrupted"
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as e:
        train_teacher(teacher_config(corpus, out, **settings))
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    assert e.value.step == 5 and e.value.signum == signal.SIGINT and e.value.checkpoint == out / "step-000005.pt"
    assert step_files(out) == [4, 5] and [r["step"] for r in read_log(out)] == [2, 4, 5]
    resumed = train_teacher(teacher_config(corpus, out, **settings))
    assert resumed.step == 6
    assert states_equal(resumed.model.state_dict(), full.model.state_dict())
    assert states_equal(resumed.ema.shadow, full.ema.shadow)


def test_cli_sigterm_exits_with_a_checkpoint_and_the_resume_command(corpus, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    argv = teacher_argv(corpus, out, "--steps", "100000", "--log-every", "1", "--ckpt-every", "100000")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "clarinet", *argv], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "train-log.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    (step, path), = ck.list_checkpoints(out)
    assert f"training stopped by SIGTERM after step {step}; checkpoint {path}" in err
    assert "Resume with the same command" in err and f"--out {out}" in err
    assert "Traceback" not in err


def test_validation_loss_and_samples(corpus, teacher_ckpt, tmp_path):
    """--val-fraction holds out utterances (the same ones on resume) whose loss is logged every
    --val-every steps; --sample-every writes a wav (and a PNG with matplotlib) for teacher and student."""
    from clarinet.plotting import have_matplotlib

    out = tmp_path / "teacher"
    res = train_teacher(teacher_config(corpus, out, steps=4, val_fraction=0.4, val_every=2, sample_every=4,
                                       sample_seconds=0.05, log_every=2))
    val = [r for r in read_log(out) if r.get("split") == "validation"]
    assert [r["step"] for r in val] == [2, 4] and all(math.isfinite(r["val_loss"]) for r in val)
    ckpt = ck.load_checkpoint(res.checkpoint)
    assert len(ckpt["extra"]["held_out"]) == 2  # 40% of 5 files
    wav = out / "samples" / "step-000004.wav"
    from clarinet.audio import load_audio

    assert load_audio(wav, SR).numel() == 4 * 300  # 0.05 s = 4 frames
    assert (out / "samples" / "step-000004.png").is_file() == have_matplotlib()

    out = tmp_path / "student"
    train_student(StudentConfig.from_sources(
        data_dir=str(corpus), out_dir=str(out), teacher=str(teacher_ckpt), segment_samples=SEGMENT, batch_size=2,
        steps=2, warmup_steps=0, backend="reference", device="cpu", progress=False, val_fraction=0.2,
        val_every=1, sample_every=2, sample_seconds=0.05,
        model=dict(flows=2, layers_per_flow=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8)))
    assert [r["step"] for r in read_log(out) if r.get("split") == "validation"] == [1, 2]
    assert (out / "samples" / "step-000002.wav").is_file()


def test_teacher_loss_decreases_on_a_tone_corpus(corpus, tmp_path):
    result = train_teacher(teacher_config(corpus, tmp_path, steps=150, lr=3e-3, warmup_steps=10, log_every=10,
                                          ckpt_every=1000, ema=0.0))
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 15 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < losses[0] - 1.0, losses
    assert result.ema is None and ck.load_checkpoint(result.checkpoint)["ema"] is None
    assert all(r["samples_per_s"] > 0 for r in result.history)


def test_config_file_and_flags(corpus, tmp_path):
    cfg_file = tmp_path / "teacher.json"
    cfg_file.write_text(json.dumps({"steps": 3, "lr": 5e-4, "model": {**TEACHER_MODEL, "layers": 2},
                                    "schedule": "cosine", "betas": [0.8, 0.99], "segment_samples": SEGMENT,
                                    "backend": "reference", "batch_size": 2}))
    out = tmp_path / "run"
    argv = ["train-teacher", str(corpus), "--out", str(out), "--config", str(cfg_file), "--steps", "2",
            "--skip-channels", "6", "--no-progress"]
    assert main(argv) == 0
    ckpt = ck.load_checkpoint(out / "step-000002.pt")
    saved = ckpt["extra"]["train_config"]
    assert saved["steps"] == 2 and saved["lr"] == 5e-4 and saved["schedule"] == "cosine"
    assert saved["betas"] == [0.8, 0.99]
    # a size flag overrides the file's value for that size and keeps the file's others
    assert ckpt["config"]["layers"] == 2 and ckpt["config"]["skip_channels"] == 6
    assert ckpt["config"]["residual_channels"] == 8 and ckpt["config"]["backend"] == "reference"


def test_bf16_is_ignored_on_the_cpu(corpus, tmp_path):
    with pytest.warns(RuntimeWarning, match="bf16"):
        result = train_teacher(teacher_config(corpus, tmp_path, steps=1, bf16=True))
    assert next(result.model.parameters()).dtype == torch.float32


def test_lr_schedule():
    cfg = TeacherConfig(data_dir="d", out_dir="o", lr=1e-3, warmup_steps=10, lr_half_life=100, min_lr=1e-5,
                        steps=1000).validate()
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(110, cfg) == pytest.approx(0.5)
    assert lr_factor(10_000, cfg) == pytest.approx(0.01)  # floored at min_lr / lr
    cfg.schedule = "cosine"
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(505, cfg) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(1000, cfg) == pytest.approx(0.01)
    cfg.schedule = "constant"
    assert lr_factor(500, cfg) == 1.0


def test_ema_update():
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = EMA(lin, 0.5)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema.update()  # d = min(0.5, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 0.9))
    ema.update()  # d = min(0.5, 2/11)
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 1 - 0.1 * 2 / 11))


# ----------------------------------------------------------------------------------------------
# train-student

def test_student_trains_from_the_teacher_checkpoint_which_stays_frozen(corpus, teacher_ckpt, tmp_path, monkeypatch):
    import clarinet.training.student

    digest = hashlib.sha256(teacher_ckpt.read_bytes()).hexdigest()
    loaded = {}
    real_load_teacher = clarinet.training.student.load_teacher

    def spy(*args, **kwargs):
        loaded["teacher"], loaded["info"] = real_load_teacher(*args, **kwargs)
        return loaded["teacher"], loaded["info"]

    monkeypatch.setattr(clarinet.training.student, "load_teacher", spy)
    out = tmp_path / "student"
    argv = ["train-student", str(corpus), "--teacher", str(teacher_ckpt), "--out", str(out), *STUDENT_SIZES,
            "--segment-samples", str(SEGMENT), "--batch-size", "2", "--steps", "40", "--lr", "2e-3",
            "--warmup-steps", "0", "--log-every", "10", "--ckpt-every", "20", "--backend", "reference",
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 0

    teacher = loaded["teacher"]
    assert loaded["info"]["used_ema"]
    ema_weights = ck.model_state(ck.load_checkpoint(teacher_ckpt), ema=True)
    assert states_equal(teacher.state_dict(), ema_weights), "the teacher changed, or is not its EMA weights"
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert hashlib.sha256(teacher_ckpt.read_bytes()).hexdigest() == digest

    log = read_log(out)
    losses = [r["loss"] for r in log]
    assert len(log) == 4 and all(math.isfinite(r[k]) for r in log for k in ("loss", "kl", "stft"))
    assert losses[-1] < losses[0], losses
    ckpt = ck.load_checkpoint(out / "step-000040.pt")
    assert ckpt["kind"] == "GaussianIAF" and ckpt["extra"]["teacher"]["used_ema"]
    assert ckpt["extra"]["audio"] == ck.load_checkpoint(teacher_ckpt)["extra"]["audio"]
    student = ck.load_model(out / "step-000040.pt", GaussianIAF)
    assert student.config["flows"] == 2


def test_student_forward_kl_and_resume(corpus, teacher_ckpt, tmp_path):
    base = dict(data_dir=str(corpus), out_dir=str(tmp_path), teacher=str(teacher_ckpt), segment_samples=SEGMENT,
                batch_size=2, warmup_steps=0, backend="reference", device="cpu", progress=False, kind="forward",
                model=dict(flows=1, layers_per_flow=2, cycle=2, residual_channels=8, gate_channels=16,
                           skip_channels=8), log_every=1, ckpt_every=2, stft_weight=0.5)
    first = train_student(StudentConfig.from_sources(**base, steps=2))
    second = train_student(StudentConfig.from_sources(**base, steps=3))
    assert [r["step"] for r in first.history] == [1, 2] and [r["step"] for r in second.history] == [3]
    assert all(math.isfinite(r["kl"]) for r in first.history + second.history)


# ----------------------------------------------------------------------------------------------
# two processes (DistributedDataParallel, gloo)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["teacher", "student"])
def test_ddp_two_processes_end_with_equal_weights(corpus, teacher_ckpt, tmp_path, command):
    out = tmp_path / "ddp"
    common = dict(data_dir=str(corpus), out_dir=str(out), segment_samples=SEGMENT, batch_size=2, steps=4,
                  warmup_steps=0, log_every=2, ckpt_every=2, backend="reference", device="cpu", progress=False)
    if command == "teacher":
        cls, model = GaussianWaveNet, dict(TEACHER_MODEL)
        call = f"train_teacher({dict(common, model=model, lr=3e-3)!r})"
    else:
        cls = GaussianIAF
        model = dict(flows=2, layers_per_flow=2, cycle=2, residual_channels=8, gate_channels=16, skip_channels=8)
        call = f"train_student({dict(common, model=model, teacher=str(teacher_ckpt))!r})"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from clarinet.train import train_student, train_teacher
        result = {call}
        rank = os.environ["RANK"]
        torch.save(result.model.state_dict(), os.path.join({str(out)!r}, "final-rank" + rank + ".pt"))
        torch.save(result.ema.state_dict()["shadow"], os.path.join({str(out)!r}, "ema-rank" + rank + ".pt"))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    w0 = torch.load(out / "final-rank0.pt", weights_only=True)
    w1 = torch.load(out / "final-rank1.pt", weights_only=True)
    assert states_equal(w0, w1), "the two processes ended with different weights"
    e0 = torch.load(out / "ema-rank0.pt", weights_only=True)
    e1 = torch.load(out / "ema-rank1.pt", weights_only=True)
    assert states_equal(e0, e1)
    ckpt = ck.load_checkpoint(out / "step-000004.pt")  # written by rank 0 only
    assert ckpt["kind"] == cls.__name__ and ckpt["extra"]["world_size"] == 2 and states_equal(ckpt["model"], w0)
    torch.manual_seed(0)
    init = cls.from_preset(command, **model, backend="reference").state_dict()
    assert not states_equal(init, w0), "no training happened"
    log = read_log(out)
    assert [r["step"] for r in log] == [2, 4]  # one log, from rank 0
    assert all(math.isfinite(r["loss"]) for r in log)


def test_ddp_signal_to_one_process_stops_every_process_after_the_same_step(corpus, tmp_path):
    """SIGTERM reaches rank 1 only, during its step 3: both ranks finish step 3 and stop there, rank 0
    writes step-000003.pt."""
    out = tmp_path / "ddp"
    config = dict(data_dir=str(corpus), out_dir=str(out), segment_samples=SEGMENT, batch_size=2, steps=50,
                  warmup_steps=0, log_every=1, ckpt_every=50, backend="reference", device="cpu", progress=False,
                  model=dict(TEACHER_MODEL))
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal
        import clarinet.losses
        from clarinet.training import TrainingInterrupted, train_teacher
        rank = os.environ["RANK"]
        real, calls = clarinet.losses.teacher_loss, []
        def loss(*args, **kwargs):
            calls.append(1)
            if rank == "1" and len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)
        clarinet.losses.teacher_loss = loss
        try:
            train_teacher({config!r})
        except TrainingInterrupted as e:
            open(os.path.join({str(out)!r}, "stopped-rank" + rank), "w").write(f"{{e.step}} {{e.checkpoint}}")
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "stopped-rank0").read_text() == f"3 {out / 'step-000003.pt'}"
    assert (out / "stopped-rank1").read_text() == "3 None"
    assert step_files(out) == [3]


# ----------------------------------------------------------------------------------------------
# bad input

def run_cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().err


def test_missing_and_empty_data_folder(tmp_path, capsys):
    code, err = run_cli(teacher_argv(tmp_path / "nowhere", tmp_path / "out", "--steps", "1"), capsys)
    assert code == 2 and "nowhere" in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    code, err = run_cli(teacher_argv(empty, tmp_path / "out", "--steps", "1"), capsys)
    assert code == 2 and "no audio files" in err
    assert not list((tmp_path / "out").glob("step-*.pt"))


def test_teacher_checkpoint_of_the_wrong_model(corpus, teacher_ckpt, tmp_path, capsys):
    student_out = tmp_path / "student"
    train_student(StudentConfig.from_sources(
        data_dir=str(corpus), out_dir=str(student_out), teacher=str(teacher_ckpt), segment_samples=SEGMENT,
        batch_size=2, steps=1, backend="reference", device="cpu", progress=False,
        model=dict(flows=1, layers_per_flow=1, cycle=1, residual_channels=4, gate_channels=4, skip_channels=4)))
    wrong = student_out / "step-000001.pt"
    argv = ["train-student", str(corpus), "--teacher", str(wrong), "--out", str(tmp_path / "s2"), "--no-progress"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and ("expected a GaussianWaveNet (train-teacher) or TextToWave (train-text2wave) checkpoint, "
                          "found a GaussianIAF checkpoint") in err

    code, err = run_cli(["train-student", str(corpus), "--teacher", str(tmp_path / "none.pt"), "--out",
                         str(tmp_path / "s3")], capsys)
    assert code == 2 and "none.pt" in err and "does not exist" in err
    code, err = run_cli(["train-student", str(corpus), "--out", str(tmp_path / "s4")], capsys)
    assert code == 2 and "--teacher" in err

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"garbage" * 10)
    code, err = run_cli(["train-student", str(corpus), "--teacher", str(garbage), "--out", str(tmp_path / "s5")],
                        capsys)
    assert code == 2 and "corrupt" in err and "garbage.pt" in err


@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "lr: expected a finite number > 0"),
    (["--steps", "0"], "steps: expected an integer >= 1"),
    (["--ema", "1"], "ema: expected a finite number >= 0.0 and < 1.0"),
    (["--batch-size", "0"], "batch_size"),
    (["--segment-samples", "1000"], "segment_samples: 1000 is not a multiple of the hop length (300)"),
    (["--preset", "huge"], "unknown GaussianWaveNet preset 'huge'"),
    (["--gate-channels", "15"], "gate_channels"),
    (["--betas", "0.9", "1.5"], "betas"),
    (["--keep", "0"], "keep"),
])
def test_bad_values(corpus, tmp_path, capsys, flags, message):
    code, err = run_cli(teacher_argv(corpus, tmp_path / "out", "--steps", "1", *flags), capsys)
    assert code == 2, err
    assert message in err


def test_bad_config_files(corpus, tmp_path, capsys):
    cases = {"unknown.json": ('{"stepz": 3}', "unknown setting(s) ['stepz']"),
             "broken.json": ("{steps: 3", "not valid JSON"),
             "list.json": ("[1, 2]", "must hold a JSON object"),
             "type.json": ('{"steps": "many"}', "steps: expected an integer"),
             "model.json": ('{"model": {"depth": 3}}', "unknown GaussianWaveNet argument(s) ['depth']"),
             "audio.json": ('{"audio": {"hop_length": -1}}', "audio: AudioConfig.hop_length")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        code, err = run_cli(teacher_argv(corpus, tmp_path / "out", "--config", str(tmp_path / name)), capsys)
        assert code == 2 and message in err, (name, err)
    code, err = run_cli(teacher_argv(corpus, tmp_path / "out", "--config", str(tmp_path / "absent.json")), capsys)
    assert code == 2 and "absent.json" in err
    with pytest.raises(ConfigError, match="out_dir"):
        TeacherConfig.from_sources(data_dir=str(corpus))


def test_resume_refuses_a_different_model(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(teacher_argv(corpus, out, "--steps", "1")) == 0
    code, err = run_cli(teacher_argv(corpus, out, "--steps", "2", "--layers", "4"), capsys)
    assert code == 2 and "use another output folder" in err


# ----------------------------------------------------------------------------------------------
# the fast backend trains like the reference

def test_triton_training_follows_the_reference_curve(corpus, teacher_ckpt, tmp_path, triton_device):
    """Teacher and student trained a few steps with backend="triton" (interpreter here) give the
    reference backend's loss curve. Short segments and no STFT term keep the interpreter quick (the
    STFT loss does not depend on the backend)."""
    curves = {}
    for backend in ("reference", "triton"):
        t = train_teacher(teacher_config(corpus, tmp_path / f"t-{backend}", steps=2, lr=3e-3, log_every=1,
                                         backend=backend, segment_samples=600, device=triton_device))
        s = train_student(StudentConfig.from_sources(
            data_dir=str(corpus), out_dir=str(tmp_path / f"s-{backend}"), teacher=str(teacher_ckpt),
            segment_samples=600, batch_size=2, warmup_steps=0, backend=backend, device=triton_device, progress=False,
            model=dict(flows=2, layers_per_flow=2, cycle=2, residual_channels=8, gate_channels=16, skip_channels=8),
            steps=2, lr=2e-3, log_every=1, stft_weight=0.0))
        curves[backend] = [r["loss"] for r in t.history] + [r["loss"] for r in s.history]
    assert len(curves["reference"]) == 4
    assert curves["triton"] != curves["reference"], "bit-identical: the triton backend was not used"
    assert curves["triton"] == pytest.approx(curves["reference"], rel=1e-4, abs=1e-5)


def test_default_lr_and_warmup_follow_the_batch_and_the_run():
    def cfg(**kw):
        return TeacherConfig.from_sources(data_dir="d", out_dir="o", **kw)

    assert cfg().lr == 5e-4 and cfg().warmup_steps == 1000  # long runs: as before, capped
    assert cfg(batch_size=2).lr == pytest.approx(2.5e-4) and cfg(batch_size=32).lr == 5e-4
    assert cfg(steps=150).warmup_steps == 15 and cfg(steps=5).warmup_steps == 0
    assert cfg(lr=1e-3, warmup_steps=7, batch_size=2).lr == 1e-3  # given values win
    assert cfg(lr=1e-3, warmup_steps=7).warmup_steps == 7
    from clarinet.training import Text2WaveConfig

    t = Text2WaveConfig.from_sources(data_dir="d", out_dir="o", batch_size=4, steps=500)
    assert t.lr == pytest.approx(2.5e-4) and t.warmup_steps == 50
