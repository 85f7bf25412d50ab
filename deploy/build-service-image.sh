#!/usr/bin/env bash
# Builds the executor service image (deploy/Dockerfile).
# Usage: deploy/build-service-image.sh [TAG]     (default TAG: plugin-executor:latest)
# Base image: $EXECUTOR_RUNTIME_BASE (default python:3.11-slim-bookworm) when present
# locally or pullable, otherwise the debootstrap root-fs image the runtime image uses.
# pip inside the build uses $EXECUTOR_BUILD_INDEX_URL (default https://pypi.org/simple) and
# trusts $EXECUTOR_BUILD_CA_BUNDLE (default: the system bundle, when there is one).
set -euo pipefail
tag=${1:-plugin-executor:latest}
base=${EXECUTOR_RUNTIME_BASE:-python:3.11-slim-bookworm}
index=${EXECUTOR_BUILD_INDEX_URL:-https://pypi.org/simple}
ca=${EXECUTOR_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
rootfs_tag=plugin-executor-rootfs:bookworm
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if docker image inspect "$base" >/dev/null 2>&1; then
  echo "[1/2] base image: $base is present locally"
elif timeout 60 docker pull "$base" >/dev/null 2>&1; then
  echo "[1/2] base image: pulled $base"
else
  echo "[1/2] base image: cannot pull $base; using $rootfs_tag"
  "$repo/deploy/build-rootfs-image.sh" "$rootfs_tag"
  base=$rootfs_tag
fi

# A minimal build context: the package, the reference platform and the CA bundle only.
context=$(mktemp -d /var/tmp/executor-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
tar -C "$repo" --exclude=__pycache__ --exclude='*.pyc' -c \
  pyproject.toml README.md executor examples/__init__.py examples/labeling_platform \
  | tar -C "$context" -x
if [ -f "$ca" ]; then cp "$ca" "$context/ca-bundle.pem"; else : >"$context/ca-bundle.pem"; fi

echo "[2/2] building $tag FROM $base"
docker build --build-arg BASE="$base" --build-arg INDEX_URL="$index" \
  -f "$repo/deploy/Dockerfile" -t "$tag" "$context"
echo "done: $tag ($(docker image inspect --format '{{.Id}}' "$tag"))"
