#!/usr/bin/env bash
# Make sure a Docker daemon answers (Debian 12, root): install docker.io, debootstrap and
# docker-compose (to validate docker-compose.yml) when missing, start dockerd in the background
# when it is not running. Idempotent.
set -euo pipefail

have_tools() {
  command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 \
    && command -v docker-compose >/dev/null 2>&1
}
if docker info >/dev/null 2>&1 && have_tools; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "ensure_docker: no Docker daemon and not root; start Docker yourself" >&2
  exit 1
fi
if ! have_tools; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q docker.io debootstrap docker-compose >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info >/dev/null 2>&1 || { echo "ensure_docker: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
