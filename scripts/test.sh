#!/usr/bin/env bash
# Install what the tests need (Python packages into .venv, Debian's chromium for the browser and
# export tests) and run the whole suite. Extra arguments go to pytest (e.g. -m "not slow").
source "$(dirname "$0")/env.sh"
install_requirements requirements-test.txt
if [ ! -x /usr/bin/chromium ]; then
  echo "xad: installing Debian's chromium for the browser tests ..." >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
