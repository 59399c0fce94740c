#!/usr/bin/env bash
# Builds OUT.tar, a minimal root filesystem for berth containers, from the
# host's static busybox (Debian's busybox-static): bin/busybox and a symlink
# per applet, root and nobody in etc/passwd and etc/group, empty etc/hosts,
# etc/resolv.conf and etc/hostname (runc mounts the container's over them),
# and the usual empty directories. Import it with
# `berth image import OUT.tar busybox` or `docker import OUT.tar busybox`.
#
# The archive is deterministic (sorted, owner 0, every mtime that of the
# busybox binary or $SOURCE_DATE_EPOCH), so the same busybox always gives
# the same image ID.
set -euo pipefail

out=${1:?usage: mkimage.sh OUT.tar}
busybox=${BUSYBOX:-/bin/busybox}

if [[ ! -x $busybox ]]; then
	echo "mkimage: $busybox is missing; install busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
# ldd fails on a static binary: a dynamic one would not run in the image.
if ldd "$busybox" >/dev/null 2>&1; then
	echo "mkimage: $busybox is dynamically linked; install busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
epoch=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$busybox")}

stage=$(mktemp -d)
trap 'rm -rf "$stage" "$out.tmp"' EXIT
umask 022
chmod 755 "$stage"
mkdir -p "$stage"/{bin,dev,etc,proc,sys,tmp,root,var/www}
chmod 1777 "$stage/tmp"
chmod 700 "$stage/root"
install -m 755 "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list); do
	[[ $applet == busybox ]] || ln -s busybox "$stage/bin/$applet"
done
cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
: >"$stage/etc/hosts"
: >"$stage/etc/resolv.conf"
: >"$stage/etc/hostname"

mkdir -p "$(dirname "$out")"
tar --create --file "$out.tmp" --directory "$stage" \
	--sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --format=gnu .
mv "$out.tmp" "$out"
