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
# WORKDIR /app exists already (made by the first RUN), so it adds no layer.
t_eq "diff_ids: base + RUN + COPY + RUN" "$(jq '.rootfs.diff_ids | length' "$T/config.json")" 4
t_eq "history entries: import, ENV, RUN, COPY, RUN, WORKDIR, CMD" "$(jq '.history | length' "$T/config.json")" 7
t_eq "non-empty history entries match diff_ids" \
    "$(jq '[.history[] | select(.empty_layer != true)] | length' "$T/config.json")" 4

# The layer of the deleting RUN carries an OCI whiteout.
layer=$(skopeo inspect "oci:$MKIMG_ROOT:hello:latest" | jq -r '.Layers[3]')
tar tf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" >"$T/layer3" 2>&1
t_grep "whiteout entry for the deleted file" '^tmp/\.wh\.scratch\.txt$' "$T/layer3"
t_eq "store tmp/ is empty after the build" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0

# A rebuild with nothing changed runs no step: every layer comes from the cache.
"$MKIMG" build -t hello2 "$MKIMG_TOP/samples/hello" >"$T/rebuild" 2>&1
t_eq "rebuild: RUN, COPY, RUN and WORKDIR cached" "$(grep -c '=> CACHED' "$T/rebuild")" 4
a=$(skopeo inspect "oci:$MKIMG_ROOT:hello:latest" | jq -c '.Layers')
b=$(skopeo inspect "oci:$MKIMG_ROOT:hello2:latest" | jq -c '.Layers')
t_eq "rebuild gives the same layers" "$a" "$b"
t_eq "rebuild with nothing changed gives the same image ID" \
    "$("$MKIMG" inspect hello2 | jq -r '.[0].Id')" "$("$MKIMG" inspect hello | jq -r '.[0].Id')"
mkdir -p "$T/iid"
t_ok "--iidfile into a directory" "$MKIMG" build -q --iidfile "$T/iid/id" -t hello "$MKIMG_TOP/samples/hello"
t_eq "--iidfile holds the ID" "$(cat "$T/iid/id")" "$("$MKIMG" inspect hello | jq -r '.[0].Id')"
# Without the cache the same steps give the same bytes again (deterministic tars); only the
# RUN layers differ where the command wrote new mtimes, so compare the base and COPY layers.
"$MKIMG" build -q --no-cache -t hello3 "$MKIMG_TOP/samples/hello" >/dev/null 2>&1
a=$(skopeo inspect "oci:$MKIMG_ROOT:hello:latest" | jq -c '.Layers[0]')
b=$(skopeo inspect "oci:$MKIMG_ROOT:hello3:latest" | jq -c '.Layers[0]')
t_eq "--no-cache rebuild: same base layer" "$a" "$b"
echo changed >"$T/hello.sh"
cp -r "$MKIMG_TOP/samples/hello" "$T/hello-ctx" && cp "$T/hello.sh" "$T/hello-ctx/hello.sh"
"$MKIMG" build -t hello4 "$T/hello-ctx" >"$T/touch" 2>&1
t_eq "changed COPY source: only the first RUN is cached" "$(grep -c '=> CACHED' "$T/touch")" 1
# A build without -t keeps the image, findable by its ID.
id=$("$MKIMG" build -q "$MKIMG_TOP/samples/hello" 2>/dev/null)
t_eq "untagged build is inspectable by ID" "$("$MKIMG" inspect "${id#sha256:}" | jq -r '.[0].Id')" "$id"
t_done
