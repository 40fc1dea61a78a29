#!/usr/bin/env bash
# A COPY leaves out the fchown of a file it creates that is owned as wanted already (issue 19:
# 20,000 fchown calls in a COPY of 20,000 files without --chown): the new file is the copy's
# euid's, and its group is the copy's egid, or the directory's when that is set-gid. strace
# counts the fchown calls; the owners in the layers are the ones COPY gives: 0:0 without
# --chown (also in a set-gid directory of another group, which needs the fchown), and the
# --chown ids.
. "$(dirname "$0")/../lib/test-lib.sh"

t_need strace
t_import_busybox
ctx=$T/ctx
mkdir -p "$ctx/tree/sub"
for i in $(seq 1 30); do echo "$i" >"$ctx/tree/sub/f$i"; done
chown -R 1234:1234 "$ctx/tree"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY tree /plain/
DF
cat >"$ctx/Dockerfile.own" <<'DF'
FROM busybox
COPY --chown=7:8 tree /owned/
DF
cat >"$ctx/Dockerfile.sgid" <<'DF'
FROM busybox
RUN mkdir /sg && chgrp 5 /sg && chmod 2775 /sg
COPY tree/sub/ /sg/
DF
fchowns() { grep -cE '(^|\s)fchown\(' "$T/trace" || true; }
# uid:gid of the entries under PREFIX in the last layer of image REF, sorted and counted.
owners() {
    d=$(skopeo inspect --raw "oci:$MKIMG_ROOT:$1:latest" | jq -r '.layers[-1].digest' | sed 's/^sha256://')
    python3 -c 'import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    if m.name.startswith(sys.argv[2]) and m.isfile():
        print("%d:%d" % (m.uid, m.gid))' "$MKIMG_ROOT/blobs/sha256/$d" "$2" | sort | uniq -c |
        awk '{print $1, $2}'
}

t_ok "a COPY without --chown builds" strace -f -e trace=fchown -o "$T/trace" \
    "$MKIMG" build -q -t plain "$ctx"
t_eq "no fchown of its files" "$(fchowns)" 0
t_eq "which are root's" "$(owners plain plain/)" "30 0:0"

t_ok "with --chown" strace -f -e trace=fchown -o "$T/trace" \
    "$MKIMG" build -q -f "$ctx/Dockerfile.own" -t owned "$ctx"
t_eq "an fchown of each file" "$(fchowns)" 30
t_eq "which are 7:8" "$(owners owned owned/)" "30 7:8"

t_ok "into a set-gid directory of group 5" strace -f -e trace=fchown -o "$T/trace" \
    "$MKIMG" build -q -f "$ctx/Dockerfile.sgid" -t sgid "$ctx"
t_eq "an fchown of each file" "$(fchowns)" 30
t_eq "which are root's all the same" "$(owners sgid sg/)" "30 0:0"
t_done
