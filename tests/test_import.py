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
