"""Build script for clarinet.

Always builds the C++ extension ``clarinet._C`` (pybind11). Builds the CUDA
extension ``clarinet._cuda`` (pybind11 over raw device pointers and a stream;
it does not link against torch) when ``nvcc`` is found, unless
``CLARINET_BUILD_CUDA=0``. Nothing here touches the network or probes the GPU.

Environment variables read at build time:

  CLARINET_BUILD_CUDA      "0" skips the CUDA extension, "1" requires it
                           (error if nvcc is missing); unset: build if nvcc found.
  CLARINET_CUDA_ARCH_LIST  semicolon-separated targets, e.g. "90a;90+PTX;100a".
                           Default "90a;90+PTX" (sm_90a machine code plus
                           compute_90 PTX that later GPUs can JIT).
  CUDA_HOME                CUDA toolkit root (default: the folder above nvcc, else
                           /usr/local/cuda).
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
DEFAULT_ARCH_LIST = "90a;90+PTX"


_CUDART = "libcudart_static.a"
_LIB_SUBDIRS = ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib")


def _find_nvcc() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def _cuda_root(nvcc: str) -> Path:
    """The toolkit root: CUDA_HOME, else the folder above nvcc (links resolved), else /usr/local/cuda.

    ``nvcc`` on PATH may be a wrapper script outside the toolkit, so a candidate
    counts only if it holds the runtime headers and the static runtime library.
    """
    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [Path(env)] if env else []
    candidates += [Path(nvcc).resolve().parent.parent, Path(nvcc).parent.parent, Path("/usr/local/cuda")]
    for root in candidates:
        if (root / "include" / "cuda_runtime.h").exists() and any((root / d / _CUDART).exists() for d in _LIB_SUBDIRS):
            return root
    raise RuntimeError(
        f"nvcc was found ({nvcc}) but no CUDA toolkit root with include/cuda_runtime.h and {_CUDART} among "
        f"{[str(c) for c in candidates]}: set CUDA_HOME, or CLARINET_BUILD_CUDA=0 to build without CUDA"
    )


def _gencode_flags(arch_list: str) -> list[str]:
    flags = []
    for item in filter(None, (a.strip() for a in arch_list.replace(",", ";").split(";"))):
        ptx = item.endswith("+PTX")
        arch = item[: -len("+PTX")] if ptx else item
        arch = arch.replace(".", "")
        if not arch[:-1].isdigit() and not arch.isdigit():
            raise ValueError(f"CLARINET_CUDA_ARCH_LIST: cannot parse target {item!r} (expected e.g. '90a' or '90+PTX')")
        code = f"compute_{arch}" if ptx else f"sm_{arch}"
        flags.append(f"-gencode=arch=compute_{arch},code={code}")
    if not flags:
        raise ValueError("CLARINET_CUDA_ARCH_LIST is empty")
    return flags


def _run_nvcc(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


class BuildExt(build_ext):
    """Compiles ``.cu`` sources with nvcc, everything else with the host compiler."""

    def build_extension(self, ext):
        cu_sources = [s for s in ext.sources if s.endswith(".cu")]
        if not cu_sources:
            return super().build_extension(ext)
        nvcc = ext.nvcc
        build_temp = Path(self.build_temp) / "cuda"
        build_temp.mkdir(parents=True, exist_ok=True)
        objects = [str(build_temp / (Path(src).stem + ".o")) for src in cu_sources]
        cmds = [
            [nvcc, "-c", src, "-o", obj, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "--expt-relaxed-constexpr",
             "-lineinfo", "-Icsrc/cuda", *ext.gencode]
            for src, obj in zip(cu_sources, objects)
        ]
        # the .cu files compile concurrently (MAX_JOBS processes, default one per CPU)
        jobs = max(1, int(os.environ.get("MAX_JOBS") or os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(jobs, len(cmds))) as pool:
            for cmd, done in zip(cmds, pool.map(_run_nvcc, cmds)):
                print(" ".join(cmd) + "\n" + done, end="")
        ext.sources = [s for s in ext.sources if not s.endswith(".cu")]
        ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)


def _extensions() -> list:
    exts = [
        Pybind11Extension(
            "clarinet._C",
            sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "cpu").glob("*.cpp")),
            cxx_std=17,
            extra_compile_args=["-O3"],
        )
    ]
    want = os.environ.get("CLARINET_BUILD_CUDA", "")
    if want == "0":
        return exts
    nvcc = _find_nvcc()
    if nvcc is None:
        if want == "1":
            raise RuntimeError("CLARINET_BUILD_CUDA=1 but nvcc was not found (set CUDA_HOME or put nvcc on PATH)")
        print("clarinet: nvcc not found, building without the CUDA extension", file=sys.stderr)
        return exts
    cuda_home = _cuda_root(nvcc)
    lib_dirs = [cuda_home / d for d in _LIB_SUBDIRS if (cuda_home / d / _CUDART).exists()]
    cuda_dir = ROOT / "csrc" / "cuda"
    sources = sorted(str(p.relative_to(ROOT)) for p in cuda_dir.glob("*.cpp")) + sorted(
        str(p.relative_to(ROOT)) for p in cuda_dir.glob("*.cu")
    )
    ext = Pybind11Extension(
        "clarinet._cuda",
        sources,
        cxx_std=17,
        include_dirs=[str(cuda_home / "include"), "csrc/cuda"],
        library_dirs=[str(d) for d in lib_dirs],
        # static runtime: the module needs only the driver (libcuda) at run time
        libraries=["cudart_static", "dl", "rt", "pthread"],
        extra_compile_args=["-O3"],
    )
    ext.nvcc = nvcc
    ext.gencode = _gencode_flags(os.environ.get("CLARINET_CUDA_ARCH_LIST", DEFAULT_ARCH_LIST))
    exts.append(ext)
    return exts


# C++ sources of one extension compile concurrently too (MAX_JOBS, default one per CPU)
ParallelCompile("MAX_JOBS", default=0).install()
setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
