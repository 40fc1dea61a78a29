#!/usr/bin/env bash
# The crafted malicious layers of test-tar-adversarial (traversal, absolute names, symlink leaf
# and parent escapes, planted symlinks, hardlink and whiteout escapes, devices, caps, truncated
# and compressed streams) applied rootless: in a user namespace as root, and as an ordinary
# user in a user namespace. Nothing outside the target may change (the test checks a canary).
. "$(dirname "$0")/../lib/test-lib.sh"

bin=$MKIMG_TOP/build/tests/unit/layerstore/test-tar-adversarial
if [ ! -x "$bin" ]; then t_fail "build the unit tests first ($bin)"; t_done; exit; fi
run() { # NAME CMD...
    local name=$1; shift
    "$@" >"$T/out" 2>&1
    local rc=$? bad
    bad=$(grep -c '^not ok' "$T/out")
    if [ "$rc" = 0 ] && [ "$bad" = 0 ] && grep -q '^1\.\.' "$T/out"; then
        t_pass "$name ($(grep -c '^ok' "$T/out") checks)"
    else
        t_fail "$name"; grep -E '^not ok|^#' "$T/out" | head -10 | sed 's/^/# /'
    fi
}
run "malicious layers in a user namespace (mapped root)" unshare -Ur "$bin"
if [ "$(id -u)" = 0 ] && user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh"); then
    cp "$bin" "$T/adv" && chmod 755 "$T/adv"
    run "malicious layers as an ordinary user in a user namespace" \
        su "$user" -s /bin/sh -c "cd /tmp && unshare -Ur '$T/adv'"
else
    t_skip "ordinary-user run needs root to create the test user"
fi
t_done
