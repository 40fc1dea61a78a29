#!/usr/bin/env bash
# Instruction semantics: ENV/ARG/LABEL/USER/EXPOSE/VOLUME/ENTRYPOINT/CMD, COPY rules, scratch,
# exec-form RUN, networks, whiteouts of directories, .dockerignore.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
ctx() { mkdir -p "$T/$1"; cat >"$T/$1/Dockerfile"; }
cfg() { skopeo inspect --config "oci:$MKIMG_ROOT:$1" | jq -c "$2"; }
unpack() { rm -rf "$T/u-$1"; umoci unpack --image "$MKIMG_ROOT:$1" "$T/u-$1" >/dev/null 2>&1; }

ctx meta <<'DF'
ARG BASE=busybox
FROM $BASE AS base
ARG VERSION=1.0
ARG FROMCLI
ENV APP=demo PATH=/opt/bin:$PATH
ENV LEGACY hello world
LABEL org.example.version=$VERSION "other label"="x y"
EXPOSE 8080 53/udp
VOLUME /data
USER nobody
STOPSIGNAL SIGTERM
RUN echo "$VERSION-$FROMCLI-$APP-$(id -u)" > /tmp/out
USER root
ENTRYPOINT ["/bin/echo"]
CMD ["a", "b"]
DF
t_ok "build metadata sample" "$MKIMG" build -t meta --build-arg FROMCLI=cli --build-arg UNDECLARED=secretvalue "$T/meta"
t_eq "Env" "$(cfg meta:latest .config.Env)" '["PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","APP=demo","LEGACY=hello world"]'
t_eq "Labels" "$(cfg meta:latest .config.Labels)" '{"org.example.version":"1.0","other label":"x y"}'
t_eq "ExposedPorts" "$(cfg meta:latest '.config.ExposedPorts|keys')" '["53/udp","8080/tcp"]'
t_eq "Volumes" "$(cfg meta:latest '.config.Volumes|keys')" '["/data"]'
t_eq "User" "$(cfg meta:latest .config.User)" '"root"'
t_eq "StopSignal" "$(cfg meta:latest .config.StopSignal)" '"SIGTERM"'
t_eq "Entrypoint" "$(cfg meta:latest .config.Entrypoint)" '["/bin/echo"]'
t_eq "Cmd" "$(cfg meta:latest .config.Cmd)" '["a","b"]'
unpack meta:latest
t_eq "RUN saw ARG, build-arg, ENV and USER" "$(cat "$T/u-meta:latest/rootfs/tmp/out")" "1.0-cli-demo-65534"
t_eq "file created by USER nobody is owned by nobody" "$(stat -c %u "$T/u-meta:latest/rootfs/tmp/out")" 65534
cfg meta:latest '.history[].created_by' >"$T/hist"
t_ok "build-arg value not in history unless declared" bash -c "! grep -q secretvalue '$T/hist'"

# ENTRYPOINT resets an inherited CMD.
ctx ep <<'DF'
FROM meta
ENTRYPOINT ["/bin/true"]
DF
t_ok "build ENTRYPOINT over a base with CMD" "$MKIMG" build -t ep "$T/ep"
t_eq "inherited CMD reset by ENTRYPOINT" "$(cfg ep:latest .config.Cmd)" "null"
t_eq "shell-form CMD" "$(printf 'FROM busybox\nCMD echo hi\n' >"$T/ep/Dockerfile"; "$MKIMG" build -q -t cmd "$T/ep" >/dev/null 2>&1; cfg cmd:latest .config.Cmd)" '["/bin/sh","-c","echo hi"]'

# COPY rules.
mkdir -p "$T/cp/dir/sub" "$T/cp/ignored"
echo one >"$T/cp/one.txt"; echo two >"$T/cp/two.txt"; echo sub >"$T/cp/dir/sub/f"
echo x >"$T/cp/ignored/x"; echo secret >"$T/cp/secret.key"
ln -s one.txt "$T/cp/link"
chmod 640 "$T/cp/two.txt"
printf 'ignored\n*.key\n' >"$T/cp/.dockerignore"
ctx cp <<'DF'
FROM busybox
WORKDIR /w
COPY one.txt rel.txt
COPY *.txt /multi/
COPY dir /dircontents
COPY dir/ /dircontents2/
COPY --chown=nobody:nogroup --chmod=600 one.txt /owned
COPY link /followed
COPY . /all/
RUN ls -la /all > /all-list
DF
t_ok "build COPY sample" "$MKIMG" build -t cp "$T/cp"
unpack cp:latest; r="$T/u-cp:latest/rootfs"
t_eq "COPY relative to WORKDIR" "$(cat "$r/w/rel.txt")" one
t_eq "wildcard into dir" "$(ls "$r/multi" | tr '\n' ' ')" "one.txt two.txt "
t_eq "mode kept" "$(stat -c %a "$r/multi/two.txt")" 640
t_eq "directory contents copied, not the dir" "$(cat "$r/dircontents/sub/f")" sub
t_eq "trailing slash source" "$(cat "$r/dircontents2/sub/f")" sub
t_eq "--chown and --chmod" "$(stat -c %u:%g:%a "$r/owned")" 65534:65534:600
t_eq "source symlink followed" "$(cat "$r/followed")" one
t_ok "symlink inside a copied dir stays a symlink" test -L "$r/all/link"
t_ok ".dockerignore dir excluded" test ! -e "$r/all/ignored"
t_ok ".dockerignore pattern excluded" test ! -e "$r/all/secret.key"

# scratch, exec-form RUN, network none, deleting a directory.
ctx misc <<'DF'
FROM busybox
RUN ["/bin/sh", "-c", "mkdir -p /gone/deep && echo x > /gone/deep/f && mkdir /keep"]
RUN rm -rf /gone && echo y > /keep/y
RUN --network=none cat /proc/net/dev | grep -c : > /netdevs
DF
t_ok "build misc sample" "$MKIMG" build -t misc "$T/misc"
unpack misc:latest; r="$T/u-misc:latest/rootfs"
t_ok "deleted directory is absent" test ! -e "$r/gone"
t_eq "network none has only lo" "$(cat "$r/netdevs")" 1
layer=$(skopeo inspect "oci:$MKIMG_ROOT:misc:latest" | jq -r '.Layers[2]')
t_grep "directory whiteout" '^\.wh\.gone$' <(tar tf "$MKIMG_ROOT/blobs/sha256/${layer#sha256:}" 2>/dev/null)

ctx scratch <<'DF'
FROM scratch
COPY one.txt /
DF
cp "$T/cp/one.txt" "$T/scratch/"
t_ok "build FROM scratch" "$MKIMG" build -t scratchy "$T/scratch"
t_eq "scratch image has one layer" "$(cfg scratchy:latest '.rootfs.diff_ids|length')" 1
unpack scratchy:latest
t_eq "scratch image content" "$(ls -A "$T/u-scratchy:latest/rootfs")" one.txt

# Multi-stage targets: --target picks a stage, unneeded stages are skipped.
ctx ms <<'DF'
FROM busybox AS first
RUN echo first > /f
FROM busybox AS broken
RUN exit 1
FROM first AS final
RUN cat /f > /g
DF
t_ok "stages the target does not need are skipped" "$MKIMG" build -t ms "$T/ms"
unpack ms:latest
t_eq "FROM an earlier stage" "$(cat "$T/u-ms:latest/rootfs/g")" first
t_ok "--target first" "$MKIMG" build -t ms1 --target first "$T/ms"
t_fails "--target broken fails" "$MKIMG" build -t ms2 --target broken "$T/ms"
t_done
