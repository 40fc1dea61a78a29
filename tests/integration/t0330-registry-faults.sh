#!/usr/bin/env bash
# a fault-injecting proxy between mkimg and the registry (500, 429, dropped connections,
# truncated and corrupted bodies): every pull and push succeeds after retries or fails with a
# clear error, nothing unverified is stored, and `mkimg fsck` finds the store sound.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

if ! reg_start; then t_skip "docker-registry not available"; t_done; exit 0; fi
t_import_busybox
"$MKIMG" push -q busybox "$REG/f/bb:1" >"$T/digest" 2>&1 || { t_fail "setup push"; t_done; exit 1; }
digest=$(cat "$T/digest")
fsck_ok() { "$MKIMG" fsck >"$T/fsck" 2>&1 || { sed 's/^/# /' "$T/fsck" | tail -5; return 1; }; }

# each pull goes through its own proxy into a fresh store
for plan in 500@manifest,429@manifest 500@blob,429@blob drop@blob,drop@blob short@blob \
    flip@blob drop@blob,short@blob,flip@blob,500@blob; do
    reg_proxy "$plan" || { t_fail "proxy starts"; continue; }
    export MKIMG_ROOT=$T/s-$reg_proxy_n
    if "$MKIMG" pull -q "$PX/f/bb:1" >"$T/out" 2>"$T/err"; then
        t_pass "pull survives $plan"
    else
        t_fail "pull survives $plan"; sed 's/^/# /' "$T/err" "$PXLOG" | tail -12
    fi
    t_eq "pulled the right image ($plan)" "$("$MKIMG" inspect "$PX/f/bb:1" 2>&1 | jq -r '.[0].Digest')" "$digest"
    t_ok "fsck after $plan" fsck_ok
done
t_grep "a dropped download resumes with Range" 'GET /v2/f/bb/blobs/sha256:[0-9a-f]+ range=bytes=[1-9][0-9]*- -> ' "$T/px3.log"

# out of retries: a clear error, nothing stored
reg_proxy "500@manifest,500@manifest" || t_fail "proxy starts"
export MKIMG_ROOT=$T/s-fail1
"$MKIMG" pull -q --retry 1 "$PX/f/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "pull fails when retries run out" "$rc" 1
t_eq "with the registry's status" "$(cat "$T/err")" \
    "mkimg: $PX/f/bb:1: fetching manifest 1: the registry answered HTTP 500"
reg_proxy "flip@blob,flip@blob,flip@blob" || t_fail "proxy starts"
export MKIMG_ROOT=$T/s-fail2
"$MKIMG" pull -q --retry 2 "$PX/f/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "pull of corrupted content fails" "$rc" 1
t_grep "as a digest mismatch" "^mkimg: $PX/f/bb:1: fetching blob sha256:[0-9a-f]+: content digest sha256:[0-9a-f]+ does not match sha256:[0-9a-f]+$" "$T/err"
t_eq "no blob stored from corrupted content" "$(find "$MKIMG_ROOT/blobs" -type f | wc -l)" 0
t_ok "fsck after a failed pull" fsck_ok

# pushes through faults
export MKIMG_ROOT=$T/store
for plan in 500@upload,429@head 500@any,429@any,500@any; do
    reg_proxy "$plan" || { t_fail "proxy starts"; continue; }
    repo=p$reg_proxy_n/bb
    if "$MKIMG" push -q busybox "$PX/$repo:1" >"$T/out" 2>"$T/err"; then
        t_pass "push survives $plan"
    else
        t_fail "push survives $plan"; sed 's/^/# /' "$T/err" "$PXLOG" | tail -12
    fi
    t_eq "pushed digest ($plan)" "$(cat "$T/out")" "$digest"
    t_ok "the registry has it ($plan)" skopeo inspect --tls-verify=false "docker://$REG/$repo:1"
done
reg_proxy "500@upload,500@upload,500@upload" || t_fail "proxy starts"
"$MKIMG" push -q --retry 1 busybox "$PX/pfail/bb:1" >/dev/null 2>"$T/err"; rc=$?
t_eq "push fails when retries run out" "$rc" 1
t_grep "push failure names the blob" "^mkimg: $PX/pfail/bb:1: pushing blob sha256:[0-9a-f]+: starting an upload: the registry answered HTTP 500$" "$T/err"
t_ok "fsck after the pushes" fsck_ok

# proxies from the environment (libcurl's http_proxy, no_proxy): the proxy sees absolute URLs
reg_proxy "" || t_fail "proxy starts"
export MKIMG_ROOT=$T/s-env
t_ok "pull through \$http_proxy" env -u no_proxy -u NO_PROXY http_proxy="http://$PX" \
    "$MKIMG" pull -q "$REG/f/bb:1"
t_grep "the requests went through the proxy" "^GET http://$REG/v2/f/bb/blobs/sha256:[0-9a-f]+ -> pass 200" "$PXLOG"
n_px=$(wc -l <"$PXLOG")
t_ok "no_proxy bypasses it" env no_proxy=127.0.0.1 http_proxy="http://$PX" \
    "$MKIMG" push -q "$REG/f/bb:1" "$REG/f/env:1"
t_eq "the proxy saw nothing more" "$(wc -l <"$PXLOG")" "$n_px"

t_done
