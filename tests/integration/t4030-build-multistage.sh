#!/usr/bin/env bash
# Multi-stage builds: COPY --from a stage by name and by index, from an image, from scratch
# stages; ARG scoping across stages; only the final stage's file system is kept.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
ctx() { mkdir -p "$T/$1"; cat >"$T/$1/Dockerfile"; }
cfg() { skopeo inspect --config "oci:$MKIMG_ROOT:$1" | jq -c "$2"; }
unpack() { rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:$1" "$T/u" >/dev/null 2>&1; }

ctx ms <<'DF'
ARG my_env=a
FROM busybox AS stage_a
RUN mkdir -p /out/bin && echo built > /out/bin/app && chmod 755 /out/bin/app
FROM scratch AS files
COPY Dockerfile /Dockerfile.copy
FROM scratch
ARG my_env
COPY --from=stage_${my_env} /out/bin/app /app
COPY --from=0 /bin/busybox /bin/
COPY --from=1 /Dockerfile.copy /
COPY --from=busybox /etc/passwd /etc/passwd
DF
t_ok "multi-stage build" "$MKIMG" build -t ms "$T/ms"
unpack ms:latest
t_eq "COPY --from by expanded name" "$(cat "$T/u/rootfs/app")" built
t_eq "mode kept across stages" "$(stat -c %a "$T/u/rootfs/app")" 755
t_ok "COPY --from by index" cmp "$T/u/rootfs/bin/busybox" /bin/busybox
t_ok "COPY --from a scratch stage by index" cmp "$T/u/rootfs/Dockerfile.copy" "$T/ms/Dockerfile"
t_ok "COPY --from an image in the store" test -s "$T/u/rootfs/etc/passwd"
t_ok "only the final stage's files are kept" test ! -e "$T/u/rootfs/out"
t_eq "final image layers: one per COPY" "$(cfg ms:latest '.rootfs.diff_ids|length')" 4

"$MKIMG" build -t ms "$T/ms" >"$T/out" 2>&1
t_eq "rebuild: every COPY --from and RUN cached" "$(grep -c '=> CACHED' "$T/out")" 6

ctx args <<'DF'
FROM busybox AS one
ARG SECRET
RUN echo "one:$SECRET" > /one
FROM busybox
RUN echo "two:$SECRET" > /two
COPY --from=one /one /one
DF
t_ok "ARG scoped per stage" "$MKIMG" build -t args --build-arg SECRET=secretthings "$T/args"
unpack args:latest
t_eq "declared ARG seen" "$(cat "$T/u/rootfs/one")" "one:secretthings"
t_eq "undeclared ARG empty in the next stage" "$(cat "$T/u/rootfs/two")" "two:"
cfg args:latest '.history[].created_by' >"$T/hist"
t_ok "build-arg value of the other stage not in final history" bash -c "! grep -q secretthings '$T/hist'"

ctx badfrom <<'DF'
FROM busybox
COPY --from=nosuchstage /x /x
DF
"$MKIMG" build --pull=never -t bad "$T/badfrom" >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown --from exits 1" "$rc" 1
t_grep "unknown --from message" '^mkimg: Dockerfile:2: --from=nosuchstage names no earlier stage and no image in the store$' "$T/err"
t_eq "no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
