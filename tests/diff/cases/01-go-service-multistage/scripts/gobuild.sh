#!/bin/sh
# Stand-in for "go build": a shell binary that says what it was built from.
set -e
out=; while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift 2 ;; *) pkg=$1; shift ;; esac; done
mkdir -p "$(dirname "$out")"
{ echo '#!/bin/sh'; echo "echo $pkg ${VERSION:-none}"; find "$pkg" -name '*.go' | sort | xargs cat | sed 's/^/# /'; } > "$out"
chmod 0755 "$out"
