#!/usr/bin/env bash
# several blobs at once: a multi-layer push and pull move layers in parallel (the fault proxy
# holds a first request until a second one of its kind arrives), pushes go up in PATCH chunks
# (resumed after a lost answer, one request when the registry refuses chunks), a transfer
# broken among several is retried or fails alone with one clear error, SIGINT during
# parallel downloads leaves no temp file, and skopeo reads back what was pushed.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi
t_import_busybox
fsck_ok() { "$MKIMG" fsck >"$T/fsck" 2>&1 || { sed 's/^/# /' "$T/fsck" | tail -5; return 1; }; }
tmp_empty() { [ -z "$(ls -A "$MKIMG_ROOT/tmp" 2>/dev/null)" ]; }

# busybox and four layers of 1.5 MiB of random bytes (gzip cannot shrink them)
mkdir -p "$T/c"
printf 'FROM busybox\n' >"$T/c/Dockerfile"
for i in 1 2 3 4; do
    head -c 1572864 /dev/urandom >"$T/c/f$i"
    printf 'COPY f%s /f%s\n' "$i" "$i" >>"$T/c/Dockerfile"
done
t_ok "build a five-layer image" "$MKIMG" build -q -t multi "$T/c"
t_eq "it has five layers" "$("$MKIMG" inspect multi | jq '.[0].RootFS.Layers | length')" 5

cp -a "$MKIMG_ROOT" "$T/fresh" # no compressed copy yet, for the streaming fault below

# push: uploads overlap, go up in 512 KiB chunks, and follow the compressor
export MKIMG_UPLOAD_CHUNK_SIZE=524288
reg_proxy "wait@upload" || t_fail "proxy starts"
"$MKIMG" push multi "$PX/par/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push exits 0" "$rc" 0
digest=$(tail -n 1 "$T/out")
t_grep "a second upload started while the first was held" '^POST /v2/par/multi/blobs/uploads/ -> wait-joined' "$PXLOG"
t_eq "each layer was uploaded while compressed" \
    "$(grep -cE '^compressing layer sha256:[0-9a-f]{64} and uploading it on the way$' "$T/err")" 5
t_grep "chunks carry Content-Range" '^PATCH /v2/par/multi/blobs/uploads/[^ ]+ range=524288-1048575 -> pass 202' "$PXLOG"
t_ok "each 1.5 MiB layer took several chunks" \
    test "$(reg_count PATCH '/v2/par/multi/blobs/uploads/[^ ]+')" -ge 12
t_eq "one closing PUT per blob" "$(reg_count PUT '/v2/par/multi/blobs/uploads/[^ ]+')" 6
skopeo inspect --raw --tls-verify=false "docker://$REG/par/multi:1" >"$T/raw" 2>&1
t_eq "the registry serves the pushed digest" "sha256:$(sha256sum <"$T/raw" | cut -d' ' -f1)" "$digest"
if skopeo copy -q --src-tls-verify=false "docker://$REG/par/multi:1" "oci:$T/sk:m" >"$T/sk.out" 2>&1 &&
    umoci unpack --rootless --image "$T/sk:m" "$T/skm" >"$T/umoci" 2>&1; then
    t_pass "skopeo pulls the chunked, parallel push"
    for i in 1 2 3 4; do t_ok "layer $i arrived whole" cmp "$T/c/f$i" "$T/skm/rootfs/f$i"; done
else
    t_fail "skopeo pulls the chunked, parallel push"; sed 's/^/# /' "$T/sk.out" "$T/umoci" | tail -5
fi

# another repository of the same registry (through the same proxy, its plan used up): every
# blob is mounted from the repository it was pushed to
"$MKIMG" push multi "$PX/other/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push to a second repository" "$rc" 0
t_eq "mounts each blob from the first" \
    "$(reg_count POST '/v2/other/multi/blobs/uploads/\?mount=sha256:[0-9a-f]+&from=par/multi')" 6
t_eq "and sends none" "$(reg_count '(PATCH|PUT)' '/v2/other/multi/blobs/uploads/[^ ]*')" 0
t_eq "same digest" "$(tail -n 1 "$T/out")" "$digest"
t_ok "skopeo reads the mounted copy" skopeo inspect --tls-verify=false "docker://$REG/other/multi:1"

# (each push below goes to a registry of its own, where nothing can be mounted)
# a chunk refused by a failing proxy: the session goes on where the registry says it stands
reg_start res || t_fail "second registry starts"
reg_proxy "500@chunk2" || t_fail "proxy starts"
"$MKIMG" push multi "$PX/res/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push survives a failed chunk" "$rc" 0
t_grep "the upload's state was asked for" '^GET /v2/res/multi/blobs/uploads/[^ ]+ -> pass 204' "$PXLOG"
t_grep "and the upload resumed" '^resuming the upload of sha256:[0-9a-f]+ at byte [1-9][0-9]*' "$T/err"
t_eq "no blob needed a second session" "$(reg_count POST '/v2/res/multi/blobs/uploads/')" 6
t_eq "same manifest digest" "$(tail -n 1 "$T/out")" "$digest"
t_ok "skopeo reads the resumed push" skopeo inspect --tls-verify=false "docker://$REG/res/multi:1"

# a chunk whose answer is lost (the registry has it, mkimg does not know): distribution ties
# a session to the location it last gave, so that upload starts over in a new session
reg_start lost || t_fail "third registry starts"
reg_proxy "noanswer@chunk2" || t_fail "proxy starts"
"$MKIMG" push multi "$PX/lost/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push survives a lost chunk answer" "$rc" 0
t_grep "the answer was lost" '^PATCH /v2/lost/multi/blobs/uploads/[^ ]+ .*-> noanswer 202' "$PXLOG"
t_eq "one blob needed a second session" "$(reg_count POST '/v2/lost/multi/blobs/uploads/')" 7
t_ok "skopeo copies that push" skopeo copy -q --src-tls-verify=false "docker://$REG/lost/multi:1" "oci:$T/sk2:m"

# a chunk fails while the compressor runs: that layer goes up once compressed
reg_start stream || t_fail "fourth registry starts"
reg_proxy "500@chunk2" || t_fail "proxy starts"
MKIMG_ROOT=$T/fresh "$MKIMG" push --retry 2 multi "$PX/st/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push survives a chunk failing during compression" "$rc" 0
# (whether the compressor is still running when the chunk fails depends on the machine: the
# layer then goes up once compressed, else its upload resumes)
t_grep "the failed chunk was sent again" '^(uploading layer sha256:[0-9a-f]{64} once compressed|resuming the upload of sha256:[0-9a-f]{64} at byte [0-9]+) \(uploading a chunk: the registry answered HTTP 500\)$' "$T/err"
t_eq "the same manifest" "$(tail -n 1 "$T/out")" "$digest"
t_ok "skopeo copies it" skopeo copy -q --src-tls-verify=false "docker://$REG/st/multi:1" "oci:$T/sk3:m"
t_ok "no temp file left in that store" env MKIMG_ROOT="$T/fresh" bash -c '[ -z "$(ls -A "$MKIMG_ROOT/tmp")" ]'
t_ok "fsck of that store" env MKIMG_ROOT="$T/fresh" "$MKIMG" fsck

# a registry that refuses PATCH gets each blob in one PUT
reg_start mono || t_fail "fifth registry starts"
reg_proxy "405@patch" || t_fail "proxy starts"
"$MKIMG" push multi "$PX/mono/multi:1" >"$T/out" 2>"$T/err"; rc=$?
t_eq "push to a registry without chunks" "$rc" 0
t_grep "says so" '^the registry takes no chunks: uploading sha256:[0-9a-f]+ in one request' "$T/err"
t_ok "skopeo reads it" skopeo inspect --tls-verify=false "docker://$REG/mono/multi:1"

unset MKIMG_UPLOAD_CHUNK_SIZE

# pull: layer downloads overlap (the config comes first, alone)
export MKIMG_ROOT=$T/p1
reg_proxy "pass@blob,wait@blob" || t_fail "proxy starts"
t_ok "parallel pull" "$MKIMG" pull -q "$PX/mono/multi:1"
t_grep "a second layer download started while the first was held" \
    '^GET /v2/mono/multi/blobs/sha256:[0-9a-f]+ -> wait-joined 200' "$PXLOG"
"$MKIMG" inspect "$PX/mono/multi:1" >"$T/insp" 2>&1
t_eq "pulled the pushed manifest" "$(jq -r '.[0].Digest' "$T/insp")" "$digest"
chain=
for d in $(jq -r '.[0].RootFS.Layers[]' "$T/insp"); do
    if [ -z "$chain" ]; then chain=$d; else chain="sha256:$(printf '%s %s' "$chain" "$d" | sha256sum | cut -d' ' -f1)"; fi
done
top=${chain#sha256:}
t_ok "layers unpacked in order (the top snapshot has every file)" \
    cmp "$T/c/f4" "$MKIMG_ROOT/snapshots/$top/f4"
t_ok "fsck after the parallel pull" fsck_ok

# one of several downloads breaks twice: retried, resumed, stored whole
export MKIMG_ROOT=$T/p2
reg_proxy "pass@blob,pass@blob,drop@blob,drop@blob" || t_fail "proxy starts"
t_ok "pull survives broken downloads among several" "$MKIMG" pull -q "$PX/mono/multi:1"
t_eq "the right image" "$("$MKIMG" inspect "$PX/mono/multi:1" | jq -r '.[0].Digest')" "$digest"
t_ok "fsck after the retried pull" fsck_ok
t_ok "no temp file left" tmp_empty

# without retries a broken download fails the pull with one line; the others stop
export MKIMG_ROOT=$T/p3
reg_proxy "pass@blob,pass@blob,drop@blob" || t_fail "proxy starts"
"$MKIMG" pull -q --retry 0 "$PX/mono/multi:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "pull fails" "$rc" 1
t_eq "with one error line" "$(wc -l <"$T/err")" 1
t_grep "naming the blob" "^mkimg: $PX/mono/multi:1: fetching blob sha256:[0-9a-f]{64}: GET " "$T/err"
t_fails "nothing tagged" "$MKIMG" inspect "$PX/mono/multi:1"
t_ok "no temp file left" tmp_empty
t_ok "fsck after the failed pull" fsck_ok

# SIGINT while layers are on the wire
export MKIMG_ROOT=$T/p4
reg_proxy "pass@blob,stall@blob" || t_fail "proxy starts"
"$MKIMG" pull -q "$PX/mono/multi:1" >/dev/null 2>"$T/err" &
pid=$!
for _ in $(seq 1 100); do grep -q -- '-> stall' "$PXLOG" && break; sleep 0.1; done
t_grep "a download hangs" '-> stall 200' "$PXLOG"
kill -INT "$pid"
wait "$pid"; rc=$?
t_eq "SIGINT stops the pull" "$rc" 130
t_grep "saying so" "^mkimg: $PX/mono/multi:1: (fetching blob|unpacking layer) sha256:[0-9a-f]{64}: interrupted$" "$T/err"
t_ok "no temp file left after SIGINT" tmp_empty
t_ok "fsck after SIGINT" fsck_ok

t_done
