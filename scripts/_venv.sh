# Sourced by scripts/*: make .venv if missing and install the project into it (idempotent).
# The install marker is written only once the installed console script runs, so a failed or
# interrupted install (no network, a broken wheel) is retried on the next run, not trusted forever.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
extra=${1:-}
stamp=.venv/.tgsync-installed$extra
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -x .venv/bin/tgsync ]; then
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "tgsync needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "Setting up .venv (first run: installing tgsync${extra:+ with $extra} and its dependencies)..." >&2
    "$PY" -m venv .venv
  else  # .venv is there (./scripts/demo made it): only what this script needs is added
    echo "Updating .venv: installing tgsync${extra:+ with $extra}${extra:+ (test tools)}..." >&2
  fi
  rm -f "$stamp"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extra" 2>&1 \
      | { grep -v -e '^WARNING: Location' -e '^$' || true; }; then
    echo "install failed: see the pip output above; run the script again to retry" >&2
    exit 1
  fi
  if ! .venv/bin/tgsync --version >/dev/null; then
    echo "install failed: .venv/bin/tgsync does not run; run the script again to retry" >&2
    exit 1
  fi
  touch "$stamp"
fi
