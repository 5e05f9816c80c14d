# Sourced by the other scripts: make .venv (Python >= 3.11) and install a requirements file into it.
# Re-installs only when the requirements file changed: a stamp per file holds the hash of that file
# and of the files it includes with "-r" (so installing one file never invalidates another's stamp).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "xad needs Python 3.11 or newer"' || exit 1
[ -x .venv/bin/python ] || "$PY" -m venv .venv
install_requirements() {  # $1: requirements file
  local stamp=".venv/.installed-$(basename "$1")" want
  local includes
  includes=$(sed -n 's/^-r[[:space:]]*//p' "$1")
  want=$(cat "$1" $includes requirements-nodeps.txt | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "xad: installing $1 into .venv (first time: a few minutes) ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"
    # packages whose declared dependencies are wrong for xad (see the file): without them
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
    echo "$want" > "$stamp"
  fi
}
