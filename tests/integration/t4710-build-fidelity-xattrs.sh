#!/usr/bin/env bash
# Extended attributes reach the layer (issue 13, reproducer 7): BuildKit copies every xattr
# of a context file (fsutil's copyXAttrs) and unpacks an ADDed archive with
# BestEffortXattrs, so file capabilities survive COPY and ADD.
. "$(dirname "$0")/../lib/test-lib.sh"

c=$T/ctx
cp -a "$MKIMG_TOP/tests/data/fidelity/copy-xattrs" "$c"
if ! setfattr -n user.mkimg.test -v probe "$c/ping" 2>/dev/null || ! command -v setcap >/dev/null; then
    t_skip "no user xattrs on $T's file system, or no setcap"; t_done; exit 0
fi
setfattr -n user.origin -v context "$c/ping"
setcap cap_net_raw+ep "$c/ping"
setfattr -n user.kind -v config "$c/conf/app.ini"
# The archive: one file with a capability and a user xattr, as GNU tar --xattrs writes them.
python3 - "$c/caps.tar" <<'PY'
import io, sys, tarfile
caps = bytes.fromhex("0100000200200000000000000000000000000000")  # v2, cap_net_raw permitted+effective
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    data = b"#!/bin/sh\n"
    i = tarfile.TarInfo("tool")
    i.size, i.mode = len(data), 0o755
    i.pax_headers = {"SCHILY.xattr.security.capability": caps.decode("latin-1"),
                     "SCHILY.xattr.user.origin": "archive"}
    t.addfile(i, io.BytesIO(data))
PY
t_ok "import busybox base" t_import_busybox
t_ok "build" "$MKIMG" build -q -t xa "$c"
# The xattrs of the entries of the image's layers, read from the layer tars themselves.
layers() { skopeo inspect --raw "oci:$MKIMG_ROOT:xa:latest" | jq -r '.layers[].digest' | sed 's/^sha256://'; }
for d in $(layers); do echo "$MKIMG_ROOT/blobs/sha256/$d"; done >"$T/layers"
python3 - "$T/layers" >"$T/xattrs" <<'PY'
import sys, tarfile
for path in open(sys.argv[1]).read().split():
    with tarfile.open(path) as t:
        for m in t:
            for k, v in sorted(m.pax_headers.items()):
                if k.startswith("SCHILY.xattr."):
                    raw = v.encode("utf-8", "surrogateescape")
                    print(m.name, k[len("SCHILY.xattr."):], raw.hex() if k.endswith("capability") else raw.decode())
PY
sed 's/^/# /' "$T/xattrs"
t_grep "COPY: user.* of a context file" '^usr/local/bin/ping user.origin context$' "$T/xattrs"
t_grep "COPY: security.capability of a context file" '^usr/local/bin/ping security.capability 0[12]0000' "$T/xattrs"
t_grep "COPY of a directory: user.* of the files in it" '^etc/app/app.ini user.kind config$' "$T/xattrs"
t_grep "ADD: SCHILY.xattr.user.* of an archive entry" '^opt/tool user.origin archive$' "$T/xattrs"
t_grep "ADD: SCHILY.xattr.security.capability of an archive entry" '^opt/tool security.capability 0[12]0000' "$T/xattrs"
t_done
