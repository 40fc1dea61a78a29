#!/bin/sh
# samples/busybox-rootfs.sh DIR - lays out a minimal busybox root file system in DIR from
# Debian's busybox-static (/bin/busybox): the embedded default base image, no network needed.
set -eu
d=$1
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "busybox-rootfs: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/root" "$d/proc" "$d/dev" "$d/sys" "$d/usr/bin" "$d/var"
cp "$bb" "$d/bin/busybox"
for a in $("$d/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$d/bin/$a"
done
chmod 1777 "$d/tmp"
chmod 700 "$d/root"
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$d/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' >"$d/etc/group"
: >"$d/etc/hosts"
: >"$d/etc/resolv.conf"
# Fixed times so that the same busybox gives the same base image on every machine.
find "$d" -exec touch -h -d @0 {} +
