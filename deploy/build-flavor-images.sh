#!/usr/bin/env bash
# Builds the runtime flavors, one image per runtime_image/flavors/<flavor>.txt, each FROM the
# runtime base image NAME:TAG, as NAME-<flavor>:TAG (the names the executor derives from
# EXECUTOR_RUNTIME_IMAGE: plugin-executor-runtime-kili:latest by default).
# Usage: deploy/build-flavor-images.sh [BASE [TAG]]
#        (default BASE: plugin-executor-runtime:latest; TAG: BASE's tag)
# EXECUTOR_FLAVORS="kili minimal" builds only those (default: every runtime_image/flavors/*.txt).
# Packages come, as for plugin builds, from EXECUTOR_BUILD_WHEELHOUSE when it is set (offline:
# --no-index --find-links, no network at all), else from EXECUTOR_BUILD_INDEX_URL (default
# PyPI) trusting EXECUTOR_BUILD_CA_BUNDLE (default: the system CA bundle).
# Each image is labelled with its `pip freeze` (io.plugin-executor.flavor.packages, which
# GET /v1/runtimes lists without starting a container) and its top-level modules
# (io.plugin-executor.flavor.modules, for the build's unknown-import warning).
# Idempotent and cheap when cached.
set -euo pipefail
base=${1:-plugin-executor-runtime:latest}
[[ "${base##*/}" == *:* ]] || base="$base:latest"
name=${base%:*}
suffix=${2:-${base##*:}}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
index=${EXECUTOR_BUILD_INDEX_URL:-https://pypi.org/simple}
ca=${EXECUTOR_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
wheelhouse=${EXECUTOR_BUILD_WHEELHOUSE:-}

work=$(mktemp -d /var/tmp/executor-flavor.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -n "$wheelhouse" ]; then
  mkdir "$work/wheelhouse"
  find "$wheelhouse" -maxdepth 1 -type f -exec cp {} "$work/wheelhouse/" \;
  source="--no-index --find-links /opt/build/wheelhouse"
  network=none
else
  cp "$ca" "$work/ca.pem"
  source="--index-url $index --cert /opt/build/ca.pem"
  network=default
fi

read_file() { docker run --rm --network none --entrypoint cat "$1" "$2" | tr '\n' ' '; }
for file in "$repo"/runtime_image/flavors/*.txt; do
  flavor=$(basename "$file" .txt)
  [[ " ${EXECUTOR_FLAVORS:-$flavor} " == *" $flavor "* ]] || continue
  tag="$name-$flavor:$suffix"
  echo "flavor $flavor: building $tag FROM $base"
  cp "$file" "$work/requirements.txt"
  docker build --network "$network" -f "$repo/runtime_image/flavors/Dockerfile" \
    --build-arg BASE="$base" --build-arg FLAVOR="$flavor" --build-arg PIP_SOURCE="$source" \
    -t "$tag" "$work"
  packages=$(read_file "$tag" /opt/venv/flavor-freeze.txt)
  modules=$(read_file "$tag" /opt/venv/flavor-modules.txt)
  docker build -q --label "io.plugin-executor.flavor.packages=${packages% }" \
    --label "io.plugin-executor.flavor.modules=${modules% }" -t "$tag" - <<<"FROM $tag" >/dev/null
  echo "flavor $flavor: $tag ($(docker image inspect --format '{{.Id}}' "$tag"))"
done
