"""``clarinet vocode``: a teacher or student checkpoint plus a wav (its log-mel) or a saved mel tensor, to a
wav; the Python path it documents. Tiny untrained models at 4 kHz (hop 50) on the CPU."""
import dataclasses

import numpy as np
import pytest
import torch

from clarinet import checkpoint as ck
from clarinet.audio import AudioConfig, load_audio, log_mel
from clarinet.cli import main
from clarinet.models import GaussianIAF, GaussianWaveNet, TextToWave
from clarinet.vocode import audio_config_of, input_mel, load_vocoder, vocode

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = AudioConfig(sample_rate=4000, n_fft=256, win_length=200, hop_length=50, n_mels=20)
SIZES = dict(residual_channels=8, gate_channels=16, skip_channels=8, n_mels=20, upsample_strides=(5, 10),
             backend="reference")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocoders")
    torch.manual_seed(0)
    teacher = GaussianWaveNet(layers=3, cycle=3, **SIZES)
    student = GaussianIAF(flows=2, layers_per_flow=2, cycle=2, **SIZES)
    extra = {"audio": dataclasses.asdict(CFG)}
    paths = {"teacher": ck.save_checkpoint(root / "teacher.pt", model=teacher, step=7, extra=extra),
             "student": ck.save_checkpoint(root / "student.pt", model=student, step=9, extra=extra)}
    return paths


@pytest.fixture(scope="module")
def wav(tmp_path_factory, sf):
    t = np.arange(2000) / CFG.sample_rate  # 0.5 s, 40 frames
    path = tmp_path_factory.mktemp("in") / "tone.wav"
    sf.write(path, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), CFG.sample_rate)
    return path


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_cli_vocodes_a_wav(ckpts, wav, tmp_path, capsys, kind):
    out = tmp_path / "sub" / "out.wav"
    assert main(["vocode", str(wav), "--checkpoint", str(ckpts[kind]), "-o", str(out), "--backend", "reference",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "4000 Hz from 40 frames" in printed
    audio = load_audio(out, CFG.sample_rate)
    assert audio.shape == (40 * 50,) and torch.isfinite(audio).all()

    # the same audio as the documented Python path with the same noise (16-bit rounding apart)
    model = ck.load_model(ckpts[kind], GaussianWaveNet if kind == "teacher" else GaussianIAF)
    mel = log_mel(load_audio(wav, CFG.sample_rate), audio_config_of(ckpts[kind]))
    expected = vocode(model, mel, backend="reference", seed=0)
    assert (audio - expected.clamp(-1, 1)).abs().max() < 1e-4


def test_mel_tensor_inputs_and_seed(ckpts, tmp_path, capsys):
    torch.manual_seed(1)
    mel = torch.randn(20, 12) - 4.0
    torch.save(mel, tmp_path / "mel.pt")
    torch.save(mel[None], tmp_path / "mel3.pt")  # (1, n_mels, F) is accepted too
    np.save(tmp_path / "mel.npy", mel.numpy())
    outs = []
    for name in ("mel.pt", "mel3.pt", "mel.npy"):
        out = tmp_path / (name + ".wav")
        assert main(["vocode", str(tmp_path / name), "--checkpoint", str(ckpts["teacher"]), "-o", str(out),
                     "--backend", "reference", "--no-progress", "--seed", "3"]) == 0
        outs.append(load_audio(out, CFG.sample_rate))
    assert outs[0].shape == (600,) and torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    out = tmp_path / "other-seed.wav"
    assert main(["vocode", str(tmp_path / "mel.pt"), "--checkpoint", str(ckpts["teacher"]), "-o", str(out),
                 "--backend", "reference", "--no-progress", "--seed", "4"]) == 0
    assert not torch.equal(load_audio(out, CFG.sample_rate), outs[0])


def test_cpp_sampler_and_float16(ckpts, tmp_path):
    pytest.importorskip("clarinet._C")
    model, cfg, info = load_vocoder(ckpts["teacher"])
    assert info == {"kind": "GaussianWaveNet", "step": 7, "mel_conditioned": True} and cfg == CFG
    mel = torch.randn(20, 6) - 4.0
    ref = vocode(model, mel, backend="reference", seed=5)
    cpp = vocode(model, mel, backend="cpp", seed=5)
    assert (ref - cpp).abs().max() < 1e-3
    half = vocode(model, mel, backend="cpp", seed=5, sample_dtype=torch.float16)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    int8 = vocode(model, mel, backend="cpp", seed=5, sample_dtype=torch.int8)
    assert int8.shape == cpp.shape and torch.isfinite(int8).all()
    student, _, _ = load_vocoder(ckpts["student"])
    with pytest.raises(ValueError, match="int8"):
        vocode(student, mel, sample_dtype=torch.int8)


def test_bad_inputs(ckpts, wav, tmp_path, capsys):
    def run(*argv):
        code = main(["vocode", *map(str, argv), "-o", str(tmp_path / "x.wav"), "--no-progress"])
        return code, capsys.readouterr().err

    code, err = run(wav, "--checkpoint", tmp_path / "missing.pt")
    assert code == 2 and "--checkpoint" in err and "does not exist" in err
    t2w = ck.save_checkpoint(tmp_path / "t2w.pt", model=TextToWave.from_preset("text2wave-tiny"), step=0)
    code, err = run(wav, "--checkpoint", t2w)
    assert code == 2 and "clarinet synthesize" in err
    code, err = run(tmp_path / "nothing.wav", "--checkpoint", ckpts["teacher"])
    assert code == 2 and "INPUT" in err and "does not exist" in err
    torch.save(torch.randn(7, 5), tmp_path / "bands.pt")
    code, err = run(tmp_path / "bands.pt", "--checkpoint", ckpts["teacher"])
    assert code == 2 and "7 mel bands" in err and "takes 20" in err
    torch.save({"not": "a tensor"}, tmp_path / "dict.pt")
    code, err = run(tmp_path / "dict.pt", "--checkpoint", ckpts["teacher"])
    assert code == 2 and "expected a saved tensor" in err
    code, err = run(wav, "--checkpoint", ckpts["student"], "--backend", "cpp")
    assert code == 2 and "--backend cpp" in err
    assert not (tmp_path / "x.wav").exists()


def test_input_mel_of_a_wav_matches_log_mel(wav):
    assert torch.equal(input_mel(wav, CFG), log_mel(load_audio(wav, CFG.sample_rate), CFG))
