# Shared set-up for scripts/demo and scripts/test: create the virtualenv if missing and install the
# project with the given extras in one pip call (mitmproxy pins h11; a second call could break it).
#   PYTHON              interpreter for a new virtualenv (default python3)
#   POLLWATCH_VENV      virtualenv folder (default .venv)
#   POLLWATCH_MITMPROXY extra requirement installed in the same call, e.g. 'mitmproxy>=12'
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV="${POLLWATCH_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.pollwatch-installed-$1"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[$1]" ${POLLWATCH_MITMPROXY:+"$POLLWATCH_MITMPROXY"}
  touch "$stamp"
fi
