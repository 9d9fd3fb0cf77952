#!/usr/bin/env bash
# herald-pdf's tests check real files with poppler (pdftotext, pdffonts, pdfinfo,
# pdftoppm) and qpdf. Idempotent.
set -euo pipefail
if command -v pdftotext >/dev/null && command -v qpdf >/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq poppler-utils qpdf
