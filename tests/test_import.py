"""Importing clarinet loads no backend: no kernel module, no compiled module, no GPU.

(torch itself may import triton when it is installed, so that is not checked here; the second test
shows clarinet works with triton unimportable.)"""
import subprocess
import sys


def test_import_loads_no_backend():
    code = (
        "import sys, clarinet, clarinet.ops\n"
        "loaded = [m for m in ('clarinet._cuda', 'clarinet._C', 'clarinet.kernels') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imported at package import: {res.stdout.strip()}"


def test_reference_needs_no_backend():
    code = (
        "import sys\n"
        "sys.modules['triton'] = None\n"  # make `import triton` fail
        "import torch, clarinet\n"
        "x = torch.randn(2, 3, 5)\n"
        "out, skip = clarinet.wavenet_layer(x, torch.randn(4, 3, 2), torch.randn(4), torch.randn(3, 2), torch.randn(3),"
        " torch.randn(6, 2), torch.randn(6), dilation=1)\n"
        "print(tuple(skip.shape), float(clarinet.gaussian_nll(x, x, x)))\n"
        "try:\n"
        "    clarinet.gaussian_nll(x, x, x, backend='triton')\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"TRITON_INTERPRET": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert "(2, 6, 5)" in res.stdout
    assert "refused:" in res.stdout and "pip install triton" in res.stdout


def test_everything_but_audio_files_works_without_soundfile_and_soxr(tmp_path):
    # soundfile and soxr made unimportable: the package, its ops, models, samplers, the bench and the
    # CLI import and run; reading or writing an audio file says which package to install
    code = (
        "import sys\n"
        "sys.modules['soundfile'] = None\n"
        "sys.modules['soxr'] = None\n"
        "import torch, clarinet, clarinet.ops, clarinet.models, clarinet.bench, clarinet.cli, clarinet.train\n"
        "from clarinet.audio import load_audio, log_mel, save_audio\n"
        "from clarinet.models import GaussianWaveNet\n"
        "m = GaussianWaveNet(layers=2, cycle=2, residual_channels=4, gate_channels=4, skip_channels=4, n_mels=80)\n"
        "print(tuple(m.generate(torch.randn(1, 80, 2), progress=False).shape))\n"
        "print(tuple(log_mel(torch.randn(1, 3000)).shape))\n"
        "for call in (lambda: load_audio('x.wav', 24000), lambda: save_audio('x.wav', torch.zeros(4), 24000)):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        print('refused:', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "(1, 600)" in res.stdout and "(1, 80, 10)" in res.stdout
    assert res.stdout.count("pip install soundfile") == 2, res.stdout


def test_every_subpackage_is_installed():
    # a non-editable install (a wheel) holds only the packages pyproject.toml lists
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "clarinet").rglob("__init__.py")}
    found.add("clarinet.kernels")  # kernels/ is installed as clarinet.kernels (package-dir)
    assert found <= listed, f"not in pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
