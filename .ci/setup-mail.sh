#!/usr/bin/env bash
# herald-mail test tools: postfix's smtp-sink (the daemon is never started), SpamAssassin
# (run offline with -L), and Python's dkimpy (with PyNaCl for Ed25519) as the DKIM verifier.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v spamassassin >/dev/null 2>&1 || need+=(spamassassin)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  # Postfix asks how to configure itself: install it unconfigured, and keep it stopped.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  if command -v postfix >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
fi
python3 -c 'import dkim, nacl' >/dev/null 2>&1 || python3 -m pip install --quiet 'dkimpy[ed25519]'
