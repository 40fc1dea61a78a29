#!/usr/bin/env bash
# mkimg manifest create|add|remove|inspect|push and build --manifest: images built apart
# joined into one index. With SOURCE_DATE_EPOCH, create/add/push of two separately built
# images gives the index digest of the one-shot build --platform A,B (locally and pushed).
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"
. "$MKIMG_TOP/tests/lib/platform.sh"
[ "$(uname -m)" = x86_64 ] || { t_skip "the test is written for an x86-64 host"; t_done; exit; }
t_platform_require
export SOURCE_DATE_EPOCH=1700000000
t_busybox_rootfs "$T/amdroot"
mkdir -p "$T/ctx"
printf 'FROM busybox\nRUN uname -m >/arch\n' >"$T/ctx/Dockerfile"
base() { # the same base images in every store
    "$MKIMG" import "$T/amdroot" busybox >/dev/null &&
        "$MKIMG" import --platform linux/arm64 "$T/arm64root" busybox >/dev/null
}
base
one=$("$MKIMG" build -q --platform linux/amd64,linux/arm64 -t one "$T/ctx")

# The "native runners": another store, one build per platform, joined afterwards.
export MKIMG_ROOT=$T/store2
base
"$MKIMG" build -q --platform linux/amd64 -t app-amd64 "$T/ctx" >/dev/null
"$MKIMG" build -q --platform linux/arm64 -t app-arm64 "$T/ctx" >/dev/null
list=$("$MKIMG" manifest create list app-amd64 app-arm64 2>"$T/err"); rc=$?
t_eq "manifest create of two images" "$rc:$(cat "$T/err")" 0:
t_eq "gives the one-shot build's index digest" "$list" "$one"
"$MKIMG" manifest inspect list >"$T/inspect"
t_eq "manifest inspect lists both platforms" \
    "$(jq -r '[.manifests[].platform.architecture] | join(",")' "$T/inspect")" amd64,arm64
arm=$(jq -r '.manifests[1].digest' "$T/inspect")
t_ok "manifest remove the arm64 image" "$MKIMG" manifest remove list "$arm"
t_eq "one entry left, still a list" "$("$MKIMG" manifest inspect list | jq '.manifests | length')" 1
t_eq "manifest add it back: the same index again" "$("$MKIMG" manifest add list app-arm64)" "$one"
"$MKIMG" manifest remove list sha256:0000000000000000000000000000000000000000000000000000000000000000 \
    >/dev/null 2>"$T/err"; rc=$?
t_eq "remove of a digest not in the list" "$rc:$(cat "$T/err")" \
    "1:mkimg: sha256:0000000000000000000000000000000000000000000000000000000000000000: not in manifest list \"list\""
"$MKIMG" manifest inspect app-amd64 >/dev/null 2>"$T/err"; rc=$?
t_eq "inspect of an image that is no list" "$rc:$(cat "$T/err")" "1:mkimg: app-amd64: not a manifest list"
t_eq "manifest with no verb is a usage error" "$("$MKIMG" manifest >/dev/null 2>&1; echo $?)" 2

# build --manifest LIST adds to a list (made when missing).
"$MKIMG" build -q --platform linux/amd64 --manifest ml "$T/ctx" >/dev/null
"$MKIMG" build -q --platform linux/arm64 --manifest ml "$T/ctx" >/dev/null
t_eq "build --manifest twice: a list of both" \
    "$("$MKIMG" manifest inspect ml | jq -r '[.manifests[].platform.architecture] | join(",")')" amd64,arm64
t_eq "the same index as the one-shot build" \
    "$(sha256sum < <("$MKIMG" manifest inspect ml | tr -d '\n') | cut -d' ' -f1)" "${one#sha256:}"
"$MKIMG" manifest add race app-amd64 >/dev/null &
"$MKIMG" manifest add race app-arm64 >/dev/null &
wait
t_eq "two manifest add at once: both in the list" \
    "$("$MKIMG" manifest inspect race | jq '.manifests | length')" 2

if reg_start; then
    export MKIMG_ROOT=$T/store
    "$MKIMG" build -q --platform linux/amd64,linux/arm64 -t "$REG/x/one:1" --push "$T/ctx" \
        >/dev/null 2>"$T/log1"
    export MKIMG_ROOT=$T/store2
    t_ok "manifest push" "$MKIMG" manifest push --digestfile "$T/d2" list "$REG/x/list:1"
    rawsum() { skopeo inspect --tls-verify=false --raw "docker://$REG/$1" | sha256sum | cut -d' ' -f1; }
    pushed=$(rawsum x/list:1)
    t_eq "the pushed list is an index of two" \
        "$(skopeo inspect --tls-verify=false --raw "docker://$REG/x/list:1" | jq '.manifests | length')" 2
    t_eq "pushed list and pushed one-shot build have one digest" "$pushed" "$(rawsum x/one:1)"
    t_eq "--digestfile has it" "$(cat "$T/d2")" "sha256:$pushed"
else
    t_skip "docker-registry not available"
fi
t_done
