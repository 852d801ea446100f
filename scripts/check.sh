#!/usr/bin/env bash
# Runs exactly what CI runs (.ci/run), without installing packages (FT_SKIP_INSTALL=1).
set -euo pipefail
FT_SKIP_INSTALL=1 exec bash "$(dirname "$0")/../.ci/run"
