#!/usr/bin/env bash
# The demo: prepare Fashion-MNIST, train the dcgan-fashion-mnist preset briefly, say where
# everything went. Called by `make demo` with the project's .venv first on PATH.
set -euo pipefail

STEPS="${DEMO_STEPS:-3000}"

if ! ganforge data fetch fashion-mnist; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "demo: installing the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
        apt-get update -qq >/dev/null || true
        apt-get install -y -qq dataset-fashion-mnist >/dev/null
        ganforge data fetch fashion-mnist
    else
        cat >&2 <<'MSG'
demo: Fashion-MNIST is not available. Get it one of these ways, then run `make demo` again:
  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist
  - download the four *-ubyte.gz files from the Fashion-MNIST page into ~/.cache/ganforge/fashion-mnist/
  - or point GANFORGE_DATA at a folder that holds them
MSG
        exit 1
    fi
fi

ganforge train dcgan-fashion-mnist --steps "$STEPS"
