#!/usr/bin/env bash
# Builds the images deploy/compose.cluster.yaml needs besides the executor's own
# (deploy/build-service-image.sh): PostgreSQL, the registry and the load balancer (haproxy),
# from Debian packages on the runtime's root file system, so nothing is pulled from a public
# registry.
# Usage: deploy/build-cluster-images.sh [POSTGRES_TAG] [REGISTRY_TAG] [BALANCER_TAG]
#   (defaults: plugin-executor-postgres:latest plugin-executor-registry:latest
#    plugin-executor-balancer:latest)
# Base image: $EXECUTOR_RUNTIME_BASE (default plugin-executor-rootfs:bookworm, built when
# missing); apt trusts $EXECUTOR_BUILD_CA_BUNDLE (default: the system bundle).
set -euo pipefail
postgres_tag=${1:-plugin-executor-postgres:latest}
registry_tag=${2:-plugin-executor-registry:latest}
balancer_tag=${3:-plugin-executor-balancer:latest}
base=${EXECUTOR_RUNTIME_BASE:-plugin-executor-rootfs:bookworm}
ca=${EXECUTOR_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! docker image inspect "$base" >/dev/null 2>&1; then
  "$repo/deploy/build-rootfs-image.sh" "$base"
fi
context=$(mktemp -d /var/tmp/executor-cluster-images.XXXXXX)
trap 'rm -rf "$context"' EXIT

build() { # build TAG FOLDER [FILE...]: the folder's Dockerfile, the files and the CA bundle
  local tag=$1 folder=$2
  shift 2
  rm -rf "${context:?}"/*
  cp -r "$repo/deploy/images/$folder/." "$@" "$context/"
  if [ -f "$ca" ]; then cp "$ca" "$context/ca-bundle.pem"; else : >"$context/ca-bundle.pem"; fi
  echo "building $tag FROM $base"
  docker build -q --build-arg BASE="$base" -t "$tag" "$context"
}
build "$postgres_tag" postgres
build "$registry_tag" registry "$repo/deploy/registry.sh"
build "$balancer_tag" balancer
