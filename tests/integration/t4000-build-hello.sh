#!/usr/bin/env bash
# Builds samples/hello on the busybox base and checks the image with skopeo and umoci.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
t_ok "build samples/hello" "$MKIMG" build -t hello "$MKIMG_TOP/samples/hello"
"$MKIMG" images >"$T/images" 2>&1
t_grep "images lists hello:latest" '^hello +latest ' "$T/images"
t_ok "skopeo inspect oci:store:hello:latest" skopeo inspect "oci:$MKIMG_ROOT:hello:latest"
t_ok "umoci unpack" umoci unpack --image "$MKIMG_ROOT:hello:latest" "$T/bundle"
r=$T/bundle/rootfs
t_eq "greeting written by RUN" "$(cat "$r/app/data/greeting.txt" 2>&1)" "hello from mkimg"
t_eq "COPY kept the content" "$(cat "$r/app/hello.sh" 2>&1)" "$(cat "$MKIMG_TOP/samples/hello/hello.sh")"
t_eq "chmod by a later RUN" "$(stat -c %a "$r/app/hello.sh" 2>&1)" "755"
t_eq "COPY owner is root" "$(stat -c %u:%g "$r/app/hello.sh" 2>&1)" "0:0"
t_ok "file deleted by a later RUN is absent" test ! -e "$r/tmp/scratch.txt"
t_ok "busybox base is there" test -x "$r/bin/busybox"
t_ok "no mount stubs leaked (etc/hosts stays the base's empty file)" test ! -s "$r/etc/hosts"

skopeo inspect --config "oci:$MKIMG_ROOT:hello:latest" >"$T/config.json"
t_eq "Cmd" "$(jq -c .config.Cmd "$T/config.json")" '["/app/hello.sh"]'
t_eq "WorkingDir" "$(jq -r .config.WorkingDir "$T/config.json")" "/app"
t_grep "Env has GREETING" '"GREETING=hello from mkimg"' "$T/config.json"
t_eq "diff_ids: base + RUN + COPY + RUN + WORKDIR" "$(jq '.rootfs.diff_ids | length' "$T/config.json")" 5
t_eq "history entries" "$(jq '.history | length' "$T/config.json")" 8
t_eq "non-empty history entries match diff_ids" \
    "$(jq '[.history[] | select(.empty_layer != true)] | length' "$T/config.json")" 5

# The layer of the deleting RUN carries an OCI whiteout.
layer=$(skopeo inspect "oci:$MKIMG_ROOT:hello:latest" | jq -r '.Layers[3]')
tar tf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" >"$T/layer3" 2>&1
t_grep "whiteout entry for the deleted file" '^tmp/\.wh\.scratch\.txt$' "$T/layer3"
t_eq "store tmp/ is empty after the build" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0

# The same build again gives the same layers (deterministic tars).
"$MKIMG" build -q -t hello2 "$MKIMG_TOP/samples/hello" >/dev/null 2>&1
a=$(skopeo inspect "oci:$MKIMG_ROOT:hello:latest" | jq -c '.Layers[0,1,2]')
b=$(skopeo inspect "oci:$MKIMG_ROOT:hello2:latest" | jq -c '.Layers[0,1,2]')
t_eq "rebuild gives identical base, RUN and COPY layers" "$a" "$b"
t_done
