#!/usr/bin/env bash
# Install what the dashboard needs (into .venv) and start it on the embedded default data.
source "$(dirname "$0")/env.sh"
install_requirements requirements.txt
exec .venv/bin/python -m streamlit run dashboard.py "$@"
