#!/usr/bin/env bash
# samples/demo.sh - `make demo`: import the embedded busybox base, build samples/hello, show it.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkimg=$top/mkimg
tmp=$(mktemp -d /tmp/mkimg-demo-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
root=${MKIMG_ROOT:-/var/lib/mkimg}
[ "$(id -u)" = 0 ] || root=${MKIMG_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/mkimg}
echo "== the image store is $root (mkimg --root DIR or MKIMG_ROOT choose another)"
echo "== importing the embedded base image busybox:latest (from Debian's busybox-static)"
"$top/samples/busybox-rootfs.sh" "$tmp/rootfs"
"$mkimg" import "$tmp/rootfs" busybox:latest
echo "== mkimg build -t hello samples/hello"
"$mkimg" build -t hello "$top/samples/hello"
echo "== mkimg images"
"$mkimg" images
echo "== mkimg inspect hello"
"$mkimg" inspect hello
echo "== mkimg run hello"
"$mkimg" run hello
