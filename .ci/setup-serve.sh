#!/usr/bin/env bash
# herald-serve: the browser end-to-end test drives Debian's chromium over the
# DevTools protocol; the load bench (`cargo bench -p herald-serve --bench load`) runs wrk.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v wrk >/dev/null || need+=(wrk)
# Fonts so screenshots show Latin and Cyrillic text.
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${need[@]}"
fi
