#!/usr/bin/env bash
# Offline build of the Code Interpreter image, for machines without a container registry:
# a Debian rootfs from debootstrap (Debian's own numpy/pandas/matplotlib/... packages) becomes a
# base image with `docker import`; the runner goes on top with a local `docker build`. Both are
# tagged by a hash of their recipe, so they are built once and reused while it is unchanged.
# Prints the final tag last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
base_hash="$(cat "$here/packages.txt" "$here/base.recipe" | sha256sum | cut -c1-12)"
base_tag="assistants-sandbox-base:$base_hash"
image_hash="$(cat "$here/build.sh" "$here/runner.py" "$here/kernel.py" "$here/Dockerfile.offline" | sha256sum | cut -c1-6)"
tag="assistants-sandbox:$base_hash-$image_hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" assistants-sandbox:latest
  echo "$tag"
  exit 0
fi

if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  mirror="${DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ]; then
    mirror="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?$|https?://[^ ]+/debian/? ' | grep -v security | head -n1 | tr -d ' ' || true)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  cache="${SANDBOX_CACHE_DIR:-/var/cache/assistants-sandbox}"
  mkdir -p "$cache"
  rootfs_tar="$cache/rootfs-$base_hash.tar"
  if [ ! -f "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
    workdir="$(mktemp -d)"
    trap 'rm -rf "$workdir"' EXIT
    packages="$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ',')"
    debootstrap --variant=minbase --include="$packages" bookworm "$workdir/root" "$mirror" >&2
    # shellcheck source=/dev/null
    ROOT="$workdir/root" bash "$here/base.recipe"
    tar -C "$workdir/root" -cf "$rootfs_tar.partial" .
    mv "$rootfs_tar.partial" "$rootfs_tar"
  fi
  docker import "$rootfs_tar" "$base_tag" >/dev/null
fi

docker build -q -t "$tag" --build-arg "BASE=$base_tag" -f "$here/Dockerfile.offline" "$here" >/dev/null
docker tag "$tag" assistants-sandbox:latest
echo "$tag"
