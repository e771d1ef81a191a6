"""clarinet.checkpoint: atomic writes, weights-only loads, models rebuilt from their config, clear errors."""
import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch

from clarinet import checkpoint as ck
from clarinet.models import GaussianIAF, GaussianWaveNet

TINY_TEACHER = dict(layers=3, cycle=3, residual_channels=8, gate_channels=16, skip_channels=8, n_mels=80,
                    backend="reference")
TINY_STUDENT = dict(flows=2, layers_per_flow=2, cycle=2, residual_channels=8, gate_channels=16, skip_channels=8,
                    n_mels=80, backend="reference")


def teacher(seed=0):
    torch.manual_seed(seed)
    return GaussianWaveNet(**TINY_TEACHER)


def trained_state(model):
    """An optimizer and scheduler that have taken two steps, and an EMA state (averages != weights)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    ema = {"decay": 0.9, "num_updates": 2,
           "shadow": {n: p.detach() * 0.5 + 0.25 for n, p in model.named_parameters()}}
    for _ in range(2):
        loss = sum((p.float() ** 2).sum() for p in model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return opt, sched, ema


def same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_round_trip_rebuilds_the_model_and_restores_everything(tmp_path):
    model = teacher()
    opt, sched, ema = trained_state(model)
    path = ck.save_checkpoint(tmp_path / "step-000002.pt", model=model, optimizer=opt, scheduler=sched, ema=ema,
                              step=2, extra={"audio": {"sample_rate": 24000, "fmax": None}, "note": [1, 2.5, "x"]})

    state = torch.load(path, weights_only=True)  # what load_checkpoint relies on
    assert state["kind"] == "GaussianWaveNet" and state["step"] == 2
    assert state["config"] == model.config

    ckpt = ck.load_checkpoint(path)
    assert ckpt["extra"] == {"audio": {"sample_rate": 24000, "fmax": None}, "note": [1, 2.5, "x"]}
    opt2 = torch.optim.AdamW(teacher(1).parameters(), lr=1e-3)
    opt2.load_state_dict(ckpt["optimizer"])
    assert opt2.state_dict()["state"][0]["step"].item() == 2
    assert ckpt["scheduler"]["last_epoch"] == 2

    raw = ck.load_model(path, ema=False)
    assert type(raw) is GaussianWaveNet and raw.config == model.config and not raw.training
    same_state(raw.state_dict(), model.state_dict())

    averaged = ck.load_model(path, GaussianWaveNet)  # EMA weights by default
    expected = {**model.state_dict(), **ema["shadow"]}
    same_state(averaged.state_dict(), expected)
    assert not torch.equal(averaged.wavenet.w_in, model.wavenet.w_in)

    assert ck.load_model(path, "GaussianWaveNet", backend="triton").config["backend"] == "triton"


def test_student_round_trip(tmp_path):
    torch.manual_seed(0)
    student = GaussianIAF(**TINY_STUDENT)
    path = ck.save_checkpoint(tmp_path / "s.pt", model=student, step=0)
    rebuilt = ck.load_model(path, GaussianIAF)
    assert type(rebuilt) is GaussianIAF and rebuilt.config == student.config
    same_state(rebuilt.state_dict(), student.state_dict())


def test_crash_during_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "step-000001.pt"
    old = teacher(0)
    ck.save_checkpoint(path, model=old, step=1)
    before = path.read_bytes()

    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # bytes reach the temp file ...
        f.truncate(100)                    # ... then the write is cut short
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated"):
        ck.save_checkpoint(path, model=teacher(1), step=2)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001.pt"], "the temp file was not removed"
    reloaded = ck.load_model(path, GaussianWaveNet, ema=False)
    same_state(reloaded.state_dict(), old.state_dict())


def test_killed_process_leaves_only_a_temp_file(tmp_path):
    """A process killed in the middle of a save (os._exit: no cleanup runs) leaves a temp file that
    latest_checkpoint ignores, and the previous checkpoint intact."""
    ck.save_checkpoint(tmp_path / "step-000001.pt", model=teacher(0), step=1)
    before = (tmp_path / "step-000001.pt").read_bytes()
    script = textwrap.dedent(f"""
        import os, torch
        from clarinet import checkpoint as ck
        from clarinet.models import GaussianWaveNet
        real = torch.save
        def dying(obj, f, *a, **k):
            real(obj, f, *a, **k)
            f.flush()
            f.truncate(1000)
            os._exit(3)
        torch.save = dying
        model = GaussianWaveNet(**{TINY_TEACHER!r})
        ck.save_checkpoint({str(tmp_path / "step-000002.pt")!r}, model=model, step=2)
        ck.save_checkpoint({str(tmp_path / "step-000001.pt")!r}, model=model, step=1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "step-000002.pt" not in names
    temps = [n for n in names if n.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".step-000002.pt."), names
    assert ck.latest_checkpoint(tmp_path) == tmp_path / "step-000001.pt"
    assert (tmp_path / "step-000001.pt").read_bytes() == before
    assert ck.load_checkpoint(tmp_path / "step-000001.pt")["step"] == 1
    assert [p.name for p in ck.remove_temp_files(tmp_path)] == temps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001.pt"]


def test_wrong_model_kind(tmp_path):
    path = ck.save_checkpoint(tmp_path / "t.pt", model=teacher(), step=0)
    with pytest.raises(ValueError, match="expected a GaussianIAF checkpoint, found a GaussianWaveNet checkpoint"):
        ck.load_model(path, GaussianIAF)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ck.load_checkpoint(missing)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ck.load_model(missing)

    good = ck.save_checkpoint(tmp_path / "good.pt", model=teacher(), step=3)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 50)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for bad in (truncated, garbage, empty):
        with pytest.raises(ValueError, match=bad.name):
            ck.load_checkpoint(bad)

    # flipped bytes inside a tensor's record: torch.load would not notice, the CRC check does
    flipped = bytearray(data)
    with zipfile.ZipFile(good) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size >= 16)
    name_len, extra_len = struct.unpack("<HH", flipped[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    flipped[start + 4: start + 12] = bytes(b ^ 0xFF for b in flipped[start + 4: start + 12])
    (tmp_path / "flipped.pt").write_bytes(flipped)
    with pytest.raises(ValueError, match="flipped.pt.*CRC"):
        ck.load_checkpoint(tmp_path / "flipped.pt")

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(ValueError, match="not a clarinet checkpoint"):
        ck.load_checkpoint(foreign)


class Payload:  # a class that a weights-only load must refuse to rebuild
    pass


def test_load_is_weights_only(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"format": ck.FORMAT, "format_version": 1, "kind": "GaussianWaveNet", "config": {},
                "model": {}, "step": 0, "evil": Payload()}, path)
    with pytest.raises(ValueError, match="weights-only load refuses"):
        ck.load_checkpoint(path)


@pytest.mark.parametrize("extra", [{"path": __import__("pathlib").Path("x")}, {"n": __import__("numpy").float32(1)},
                                   {1.5: "float key"}])
def test_save_refuses_what_a_weights_only_load_cannot_read(tmp_path, extra):
    with pytest.raises(TypeError, match="cannot be stored in a checkpoint"):
        ck.save_checkpoint(tmp_path / "x.pt", model=teacher(), step=0, extra=extra)
    assert list(tmp_path.iterdir()) == []


def test_save_needs_a_config_and_a_step(tmp_path):
    with pytest.raises(TypeError, match="config"):
        ck.save_checkpoint(tmp_path / "x.pt", model=torch.nn.Linear(2, 2), step=0)
    with pytest.raises(ValueError, match="step"):
        ck.save_checkpoint(tmp_path / "x.pt", model=teacher(), step=-1)


def test_latest_checkpoint_and_pruning(tmp_path):
    assert ck.latest_checkpoint(tmp_path / "absent") is None
    assert ck.latest_checkpoint(tmp_path) is None
    model = teacher()
    for step in (2, 10, 4):
        ck.save_checkpoint(tmp_path / ck.checkpoint_name(step), model=model, step=step)
    # a temp file of an interrupted write of a newer step, and files that are not step checkpoints
    (tmp_path / ".step-000012.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "step-000011.pt.tmp").write_bytes(b"partial")
    (tmp_path / "best.pt").write_bytes((tmp_path / "step-000010.pt").read_bytes())
    assert ck.latest_checkpoint(tmp_path) == tmp_path / "step-000010.pt"

    # a step file that is not a complete archive (e.g. copied in truncated) is skipped with a warning
    (tmp_path / "step-000011.pt").write_bytes(b"PK\x03\x04 truncated")
    assert not zipfile.is_zipfile(tmp_path / "step-000011.pt")
    with pytest.warns(RuntimeWarning, match="step-000011.pt"):
        assert ck.latest_checkpoint(tmp_path) == tmp_path / "step-000010.pt"

    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [2, 4, 10, 11]
    deleted = ck.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["step-000002.pt", "step-000004.pt"]
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [10, 11]
    with pytest.raises(ValueError, match="keep"):
        ck.prune_checkpoints(tmp_path, keep=0)
    assert os.path.exists(tmp_path / "best.pt")
