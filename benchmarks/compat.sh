#!/usr/bin/env bash
# Run the CPU test suite against chosen torch / triton versions, in a new virtual environment.
#
#   bash benchmarks/compat.sh TORCH TRITON [PIP_SPEC ...] [-- PYTEST_ARGS ...]
#
#   bash benchmarks/compat.sh 2.11.0 3.6.0 "numpy<2.4"     # the GPU machine's torch and triton
#   bash benchmarks/compat.sh 2.13.0 3.9.0                  # the pinned torch, the newest triton
#
# The working tree (tracked and untracked, not ignored files: what a clone plus your uncommitted
# changes would hold) is copied to a temporary folder, a venv is made there, the given versions are
# installed first, then the package with its test extra (nothing already installed is re-resolved
# unless it must be), and `python -m pytest` runs in the copy. Prints the versions it ran with and
# ends with pytest's exit status. COMPAT_DIR=<dir> keeps the venv and copy there (reused if present).
#
# Triton 3.6's interpreter calls int() on one-element numpy arrays, which numpy >= 2.4 refuses:
# with triton 3.6, pass "numpy<2.4" (on a GPU the interpreter is not used and any numpy works).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0"
  exit 2
fi
torch_v=$1
triton_v=$2
shift 2
pip_specs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  pip_specs+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
work=${COMPAT_DIR:-$(mktemp -d)}
mkdir -p "$work/src"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$work/src"
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
pip install -q "torch==$torch_v" "triton==$triton_v" "${pip_specs[@]}"
cd "$work/src"
pip install -q -e ".[test]" "torch==$torch_v" "triton==$triton_v" "${pip_specs[@]}"
python - <<'EOF'
import numpy, torch, triton, pytest
print(f"compat: torch {torch.__version__}, triton {triton.__version__}, numpy {numpy.__version__}, "
      f"pytest {pytest.__version__}")
EOF
status=0
python -m pytest -q -p no:cacheprovider "$@" || status=$?
echo "compat: torch $torch_v, triton $triton_v ${pip_specs[*]}: pytest exit $status (in $work)"
exit $status
