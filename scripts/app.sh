#!/usr/bin/env bash
# Install, create the built-in demo dataset (once), and open CNN Studio in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
demo="${CNN_STUDIO_WORKSPACE:-workspace}/datasets/demo"
[ -d "$demo" ] || .venv/bin/python -m core demo "$demo"
exec .venv/bin/streamlit run app.py "$@"
