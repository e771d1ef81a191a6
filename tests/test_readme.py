"""Every Python snippet in README.md runs as written.

Each ```python block runs in a fresh namespace in a temporary folder that holds what a reader would
have: ``speech.wav`` (a second of a chirp at 24 kHz) and, for a path like ``runs/<x>/step-N.pt``, a
checkpoint of an untrained small model of the kind the snippet loads. The only change made to the
text: 24000-sample lengths become 4800 (the snippets' numbers are training shapes; the CPU suite
keeps to small ones).
"""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)

pytestmark = pytest.mark.usefixtures("one_thread")


def _first_line(code: str) -> str:
    return next(line for line in code.splitlines() if line.strip() and not line.startswith("#"))[:60]


def _checkpoint(path: Path, kind: str) -> None:
    from clarinet.checkpoint import save_checkpoint
    from clarinet.models import GaussianIAF, GaussianWaveNet, TextToWave

    torch.manual_seed(0)
    model = {"TextToWave": lambda: TextToWave.from_preset("text2wave-tiny", max_frames=30),
             "GaussianWaveNet": lambda: GaussianWaveNet(layers=2, cycle=2, residual_channels=8, gate_channels=8,
                                                        skip_channels=8),
             "GaussianIAF": lambda: GaussianIAF(flows=1, layers_per_flow=2, cycle=2, residual_channels=8,
                                                gate_channels=8, skip_channels=8)}[kind]()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model=model, step=1)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize("code", SNIPPETS, ids=[_first_line(c) for c in SNIPPETS])
def test_readme_snippet_runs(code, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    if "speech.wav" in code:
        sf = request.getfixturevalue("sf")
        t = np.arange(24000) / 24000
        sf.write("speech.wav", (0.3 * np.sin(2 * np.pi * (200 * t + 300 * t ** 2))).astype(np.float32), 24000)
    for path, kind in re.findall(r'load_model\("([^"]+)", "(\w+)"\)', code):
        _checkpoint(tmp_path / path, kind)
    code = code.replace("24000", "4800")
    exec(compile(code, f"README.md snippet '{_first_line(code)}'", "exec"), {"__name__": "__readme__"})
