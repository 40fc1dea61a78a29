#!/usr/bin/env bash
# build options: --label, --annotation, --metadata-file, --platform (and FROM --platform),
# --timestamp and --build-arg SOURCE_DATE_EPOCH, --squash, and the progress output (plain
# and tty); each checked in the image with skopeo, umoci or tar.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/c; mkdir -p "$c"
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN mkdir /d && echo a >/d/a && echo b >/d/b && echo x >/x && echo gone >/tmp/t
RUN rm /d/a /bin/vi /tmp/t && echo c >/d/c
RUN rm -rf /d && mkdir /d && echo new >/d/n
LABEL from=df
CMD ["sh"]
DF
cfg() { skopeo inspect --config "oci:$MKIMG_ROOT:$1" | jq -c "$2"; }
raw() { skopeo inspect --raw "oci:$MKIMG_ROOT:$1" | jq -c "$2"; }

# ---- --label, --annotation, --metadata-file
t_ok "build with labels, an annotation and a metadata file" "$MKIMG" build -q -t opt \
    --label a=1 --label from=cli --annotation org.example.x=yes \
    --metadata-file "$T/meta.json" "$c"
t_eq "--label set, and wins over LABEL" "$(cfg opt:latest .config.Labels)" '{"a":"1","from":"cli"}'
t_eq "--annotation on the manifest" "$(raw opt:latest '.annotations["org.example.x"]')" '"yes"'
t_eq "metadata file: manifest digest" "$(jq -r '."containerimage.digest"' "$T/meta.json")" \
    "$("$MKIMG" inspect opt | jq -r '.[0].Digest')"
t_eq "metadata file: config digest is the image ID" \
    "$(jq -r '."containerimage.config.digest"' "$T/meta.json")" "$("$MKIMG" inspect opt | jq -r '.[0].Id')"
t_eq "metadata file: descriptor size" "$(jq -r '."containerimage.descriptor".size' "$T/meta.json")" \
    "$(skopeo inspect --raw "oci:$MKIMG_ROOT:opt:latest" | wc -c)"
t_eq "metadata file: names" "$(jq -r '."image.name"' "$T/meta.json")" "opt:latest"
"$MKIMG" build -q --label =x "$c" >/dev/null 2>"$T/err"
t_eq "--label without a key is a usage error" "$?" 2
"$MKIMG" build -q --timestamp yesterday "$c" >/dev/null 2>"$T/err"
t_eq "--timestamp that is not a number is a usage error" "$?" 2
t_grep "... saying so in one line" '^mkimg: build: --timestamp takes seconds since the epoch, not "yesterday"$' "$T/err"
"$MKIMG" build -q --jobs 0 "$c" >/dev/null 2>"$T/err"
t_eq "--jobs 0 is a usage error" "$?" 2
"$MKIMG" build -q --build-arg SOURCE_DATE_EPOCH=soon "$c" >/dev/null 2>"$T/err"
t_grep "a SOURCE_DATE_EPOCH build-arg that is not a number is named" 'SOURCE_DATE_EPOCH=soon: not a number of seconds' "$T/err"

# ---- --platform
t_ok "--platform of the host builds" "$MKIMG" build -q --platform "linux/$(dpkg --print-architecture)" "$c"
"$MKIMG" build -q -t other --platform linux/s390x "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "--platform of another arch fails" "$rc" 1
if [ -e /proc/sys/fs/binfmt_misc/qemu-s390x ]; then
    t_grep "... with a clear message" '^mkimg: .*base image "busybox": no image for platform linux/s390x' "$T/err"
else
    t_grep "... with a clear message" '^mkimg: Dockerfile:[0-9]+: RUN for linux/s390x needs QEMU user emulation, .* \(install qemu-user-static and binfmt-support\)$' "$T/err"
fi
t_fails "... and tags nothing" "$MKIMG" inspect other
printf 'FROM --platform=$BUILDPLATFORM busybox\nRUN true\n' >"$c/Dockerfile.bp"
t_ok "FROM --platform=\$BUILDPLATFORM builds" "$MKIMG" build -q -f "$c/Dockerfile.bp" "$c"
printf 'FROM busybox\nFROM --platform=linux/s390x busybox\n' >"$c/Dockerfile.p2"
"$MKIMG" build -q --pull=never -f "$c/Dockerfile.p2" "$c" >/dev/null 2>"$T/err"
t_grep "FROM --platform of another arch names the line and the platforms there are" \
    "Dockerfile.p2:2: base image \"busybox\": no image for platform linux/s390x \\(the image is linux/$(dpkg --print-architecture)\\)\$" "$T/err"

# ---- --timestamp and --build-arg SOURCE_DATE_EPOCH: clamped times, same digest on two roots
digest_on() { # ROOT ARGS...
    local root=$1; shift
    SOURCE_DATE_EPOCH=1 MKIMG_ROOT=$T/$root "$MKIMG" import "$T/bbroot" busybox:latest >/dev/null &&
        MKIMG_ROOT=$T/$root "$MKIMG" build -q -t ts "$@" "$c" >/dev/null &&
        MKIMG_ROOT=$T/$root "$MKIMG" inspect ts | jq -r '.[0].Digest'
}
d1=$(digest_on ts1 --timestamp 1700000000); sleep 1.1
d2=$(digest_on ts2 --timestamp 1700000000)
t_eq "--timestamp: same manifest digest on two roots" "$d1" "$d2"
t_eq "--timestamp: created is the timestamp" \
    "$(skopeo inspect --config "oci:$T/ts1:ts:latest" | jq -r .created)" "2023-11-14T22:13:20Z"
d3=$(digest_on ts3 --build-arg SOURCE_DATE_EPOCH=1700000000)
t_eq "--build-arg SOURCE_DATE_EPOCH gives the same image" "$d3" "$d1"
d4=$(digest_on ts1 --timestamp 1600000000)
t_ok "another timestamp on the same root is another image (not a stale cache hit)" test "$d4" != "$d1"
top=$(skopeo inspect --raw "oci:$T/ts1:ts:latest" | jq -r '.layers[-1].digest')
t_eq "... and its layer's mtimes are clamped to it (whiteouts have 0)" \
    "$(tar --utc -tvf "$T/ts1/blobs/sha256/${top#sha256:}" 2>/dev/null | awk '{print $4}' | grep -v 1970-01-01 | sort -u)" "2020-09-13"

# ---- --squash: the layers this build adds become one, the base stays shared
t_ok "squashed build" "$MKIMG" build -q -t sq --squash "$c"
base_layers=$(raw busybox:latest '.layers|length')
t_eq "one layer on top of the base's" "$(raw sq:latest '.layers|length')" "$((base_layers + 1))"
t_eq "the base layers are the base image's" "$(raw sq:latest '[.layers[:-1][].digest]')" \
    "$(raw busybox:latest '[.layers[].digest]')"
t_eq "history: one non-empty entry per layer" \
    "$(cfg sq:latest '[.history[]|select(.empty_layer|not)]|length')" "$((base_layers + 1))"
top=$(raw sq:latest '.layers[-1].digest' | tr -d '"')
tar tf "$MKIMG_ROOT/blobs/sha256/${top#sha256:}" 2>/dev/null | sort >"$T/sqlist"
t_grep "the deleted base file is a whiteout" '^bin/\.wh\.vi$' "$T/sqlist"
t_grep "the replaced directory is opaque" '^d/\.wh\.\.wh\.\.opq$' "$T/sqlist"
t_ok "a file added and deleted inside the build is in no layer" bash -c "! grep -q '^tmp/t$' '$T/sqlist'"
t_ok "files of the deleted directory are gone" bash -c "! grep -qE '^d/(a|b|c)$' '$T/sqlist'"
t_ok "umoci unpacks the squashed image" umoci unpack --image "$MKIMG_ROOT:sq:latest" "$T/sq"
t_eq "unpacked: /d holds only the new file" "$(ls "$T/sq/rootfs/d")" "n"
t_eq "unpacked: /x kept" "$(cat "$T/sq/rootfs/x")" "x"
t_ok "unpacked: /bin/vi deleted" test ! -e "$T/sq/rootfs/bin/vi"
umoci unpack --image "$MKIMG_ROOT:opt:latest" "$T/nosq" >/dev/null 2>&1
t_ok "same tree as without --squash" diff -r --no-dereference "$T/nosq/rootfs" "$T/sq/rootfs"
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0

# ---- progress: plain lines with the step prefix and times, a live line on a tty
printf 'FROM busybox\nRUN echo out1 && echo err1 >&2\nCOPY Dockerfile /D\n' >"$c/Dockerfile.pr"
"$MKIMG" build --progress=plain -f "$c/Dockerfile.pr" "$c" >/dev/null 2>"$T/plain"
t_grep "plain: step line" '^\[2/3\] RUN echo out1' "$T/plain"
t_grep "plain: RUN stdout behind the step prefix and its time (buildx's #N SECS)" '^#2 [0-9]+\.[0-9]{3} out1$' "$T/plain"
t_grep "plain: RUN stderr behind the step prefix and its time" '^#2 [0-9]+\.[0-9]{3} err1$' "$T/plain"
t_grep "plain: the step's time" '^ => done [0-9]+\.[0-9]{2}s$' "$T/plain"
"$MKIMG" build --progress=plain -f "$c/Dockerfile.pr" "$c" >/dev/null 2>"$T/plain2"
t_eq "plain: a rebuild shows CACHED per step" "$(grep -c '^ => CACHED$' "$T/plain2")" 2
printf 'FROM busybox\nRUN echo tty-out; sleep 0.4\n' >"$c/Dockerfile.tty"
script -qec "'$MKIMG' build --progress=auto -f '$c/Dockerfile.tty' '$c'" "$T/tty" >/dev/null 2>&1
tr '\r' '\n' <"$T/tty" | sed 's/\x1b\[K//g' >"$T/tty.lines"
t_grep "tty: the running step's time ticks" '^\[2/2\] RUN echo tty-out; sleep 0.4  0\.[1-9]s$' "$T/tty.lines"
t_grep "tty: the output above the status line" '^#2 tty-out$' "$T/tty.lines"
t_ok "tty: no plain result lines" bash -c "! grep -q '=> done' '$T/tty.lines'"
"$MKIMG" build --progress=quiet -f "$c/Dockerfile.pr" "$c" >/dev/null 2>"$T/quiet"
t_eq "quiet: nothing on stderr" "$(cat "$T/quiet")" ""
t_done
