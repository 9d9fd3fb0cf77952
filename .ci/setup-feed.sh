#!/usr/bin/env bash
# herald-feed's tests need Python's feedparser (a third, independent feed parser)
# and xsltproc (to check that feed.xsl turns a feed into a readable page).
set -euo pipefail

if ! command -v xsltproc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq xsltproc
fi

if ! python3 -c 'import feedparser' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'feedparser>=6,<7' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'feedparser>=6,<7'
fi

python3 -c 'import feedparser; print("feedparser", feedparser.__version__)'
xsltproc --version | head -n 1
