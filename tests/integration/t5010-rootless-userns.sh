#!/usr/bin/env bash
# Entering the rootless user namespace: an ordinary user with subordinate ranges gets them
# mapped without a warning; a user without ranges still works, with only its own id, and is
# told how to add a range.
. "$(dirname "$0")/../lib/test-lib.sh"

if [ "$(id -u)" != 0 ]; then t_skip "needs root to create the test user"; t_done; exit; fi
user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh") || { t_fail "rootless setup"; t_done; exit; }

mkdir -p "$T/u"
cp "$MKIMG" "$T/u/mkimg"
chown -R "$user" "$T/u"
as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' $*"; }

as_user ./mkimg images >"$T/out" 2>"$T/err"
t_eq "images as $user exits 0" "$?" 0
t_eq "no single-id warning with subordinate ranges" "$(cat "$T/err")" ""
t_eq "the store belongs to the user on the host" "$(stat -c %U "$T/u/store" 2>&1)" "$user"

# nobody has no /etc/subuid range: only its own id is mapped.
mkdir -p "$T/n"
cp "$MKIMG" "$T/n/mkimg"
chown -R nobody "$T/n"
(cd "$T/n" && MKIMG_ROOT="$T/n/store" USER=nobody setpriv --reuid=nobody --regid=nogroup \
    --clear-groups ./mkimg images) >"$T/out" 2>"$T/err"
t_eq "images without a subordinate range exits 0" "$?" 0
t_grep "the user is told only one id is mapped" \
    '^mkimg: warning: no subordinate id range .*usermod --add-subuids 100000-165535 --add-subgids 100000-165535 nobody' "$T/err"
t_eq "that store belongs to nobody too" "$(stat -c %U "$T/n/store" 2>&1)" nobody
t_done
