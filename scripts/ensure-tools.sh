#!/usr/bin/env bash
# Installs what skiff's tests and demo need beyond Node and npm, when missing (Debian, as root):
# docker-registry (the CNCF distribution server the tests and demo talk to), skopeo (fixtures,
# comparisons), squid (the HTTP proxy of the proxy tests), openssl (their private CA) and gnupg
# (GPG-signed images for the trust tests), attr (getfattr, for the unpack xattr test). With --modern also a current skopeo (1.18, installed privately by modern-skopeo.sh),
# which writes today's zstd:chunked for the tests. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
# squid lives in /usr/sbin, which a non-root PATH may lack.
[[ -x /usr/sbin/squid ]] || command -v squid >/dev/null || need+=(squid)
command -v openssl >/dev/null || need+=(openssl)
command -v gpg >/dev/null || need+=(gnupg)
# getfattr reads back the extended attributes unpack sets (test/integration/unpack-files.test.ts).
command -v getfattr >/dev/null || need+=(attr)
if ((${#need[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "ensure-tools: ${need[*]} missing; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "ensure-tools: installing ${need[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ${1:-} == --modern && ! -x /opt/skopeo-modern/skopeo ]]; then
  echo "ensure-tools: installing skopeo 1.18 privately (scripts/modern-skopeo.sh)" >&2
  bash "$here/modern-skopeo.sh" >/dev/null
fi
