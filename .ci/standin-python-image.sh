#!/usr/bin/env bash
# Makes sure the Docker image python:3.11-slim (the Dockerfile's base) exists locally. Where it
# is neither present nor pullable (no registry access, as on CI here), builds a stand-in:
# Debian 12 from debootstrap with Python 3.11, pip and venv, imported and tagged under that name.
# The machine's CA certificates go in so pip works behind a TLS-inspecting proxy; proxies are
# build args (HTTP(S)_PROXY), never baked in. Prints "standin" or "real" as its last line.
set -euo pipefail
tag="${1:-python:3.11-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  if [ "$(docker image inspect -f '{{index .Config.Labels "flowerbot.standin"}}' "$tag")" = yes ]
  then echo standin; else echo real; fi
  exit 0
fi
if timeout 120 docker pull -q "$tag" >&2; then
  echo real
  exit 0
fi
echo "$tag cannot be pulled: building a Debian 12 stand-in with debootstrap" >&2

command -v debootstrap >/dev/null || {
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
}
root="$(mktemp -d /tmp/standin-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT
# minbase: no init system or man pages; python3-venv brings ensurepip for `python3 -m venv`.
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
  bookworm "$root" "$mirror" >&2

# The machine's trust store: its bundle (which may carry a proxy's CA) and any local CAs.
cp -a /etc/ssl/certs/. "$root/etc/ssl/certs/"
if [ -d /usr/local/share/ca-certificates ]; then
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
# Smaller image: package lists and caches are rebuilt by apt-get update when needed.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

# pip in a venv uses its own certifi unless told: point it (and Python) at the system bundle.
bundle=/etc/ssl/certs/ca-certificates.crt
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PIP_CERT=$bundle SSL_CERT_FILE=$bundle REQUESTS_CA_BUNDLE=$bundle" \
  --change 'LABEL flowerbot.standin=yes' \
  --change 'CMD ["python3"]' \
  - "$tag" >&2
echo standin
