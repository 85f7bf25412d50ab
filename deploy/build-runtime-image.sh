#!/usr/bin/env bash
# Builds the plugin runtime base image (runtime_image/Dockerfile) that every plugin image
# starts FROM.
# Usage: deploy/build-runtime-image.sh [TAG]     (default TAG: plugin-executor-runtime:latest)
# Base image: $EXECUTOR_RUNTIME_BASE (default python:3.11-slim-bookworm) when it is present
# locally or can be pulled; otherwise the debootstrap root-fs image built by
# deploy/build-rootfs-image.sh. Idempotent; the docker build always runs (cheap when cached)
# so changes to runtime_image/plugin_runtime land.
set -euo pipefail
tag=${1:-plugin-executor-runtime:latest}
base=${EXECUTOR_RUNTIME_BASE:-python:3.11-slim-bookworm}
rootfs_tag=plugin-executor-rootfs:bookworm
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

echo "[1/3] base image: looking for $base"
if docker image inspect "$base" >/dev/null 2>&1; then
  echo "[2/3] base image: $base is present locally"
elif pull_log=$(timeout 60 docker pull "$base" 2>&1); then
  echo "[2/3] base image: pulled $base"
else
  echo "[2/3] base image: cannot pull $base ($(tail -n 1 <<<"$pull_log")); using $rootfs_tag"
  "$repo/deploy/build-rootfs-image.sh" "$rootfs_tag"
  base=$rootfs_tag
fi

echo "[3/3] building $tag FROM $base"
docker build --build-arg BASE="$base" -t "$tag" "$repo/runtime_image"
echo "done: $tag ($(docker image inspect --format '{{.Id}}' "$tag"))"
