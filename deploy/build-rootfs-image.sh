#!/usr/bin/env bash
# Builds the Debian root file system image the runtime image starts FROM when no registry
# can be pulled from: debootstrap (minbase) + python3, imported with `docker import`.
# Usage: deploy/build-rootfs-image.sh TAG   (idempotent: does nothing if TAG exists)
set -euo pipefail
tag=${1:?usage: build-rootfs-image.sh TAG}
suite=${EXECUTOR_ROOTFS_SUITE:-bookworm}
mirror=${EXECUTOR_ROOTFS_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "rootfs image $tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }

work=$(mktemp -d /var/tmp/executor-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "debootstrap $suite into $work (a few minutes)"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log"; echo "debootstrap failed: see the lines above" >&2; exit 1; }
# Keep the image small: package lists, caches and docs are not needed at run time.
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin \
       "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/share/locale"
tar -C "$work/root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "imported $tag"
