# tests/lib/test-lib.sh - helpers for CLI integration tests (sourced).
#
# Each test script: source this, call `t_ok NAME COMMAND...` / helpers, end with `t_done`.
# Every script gets a fresh store ($MKIMG_ROOT) and scratch dir ($T) removed at exit.
set -u
MKIMG_TOP=${MKIMG_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MKIMG=${MKIMG:-$MKIMG_TOP/mkimg}
T=$(mktemp -d /tmp/mkimg-it-XXXXXX)
chmod 755 "$T"
export MKIMG_ROOT=$T/store
t_n=0
t_failed=0
t_cleanup() {
    # Stores hold files owned by subordinate ids; remove through mkimg's own helper when needed.
    rm -rf "$T" 2>/dev/null || true
}
trap t_cleanup EXIT

# A command that is not installed fails the script (at t_done), wherever it was called: in a
# condition or a $(...) it would only read as "false" or "", and a check could pass unseen.
command_not_found_handle() {
    echo "$1" >>"$T/.not-found"
    echo "$0: $1: command not found (make deps installs what the tests need)" >&2
    return 127
}

t_pass() { t_n=$((t_n + 1)); echo "ok $t_n - $1"; }
t_fail() { t_n=$((t_n + 1)); t_failed=$((t_failed + 1)); echo "not ok $t_n - $1"; }
t_skip() { t_n=$((t_n + 1)); echo "ok $t_n - # SKIP $1"; }

# t_ok NAME CMD...: passes when CMD exits 0; shows its output otherwise.
t_ok() {
    local name=$1; shift
    if "$@" >"$T/.out" 2>&1; then t_pass "$name"; else
        t_fail "$name"; sed 's/^/# /' "$T/.out" | tail -20; fi
}
# t_fails NAME CMD...: passes when CMD exits non-zero.
t_fails() {
    local name=$1; shift
    if "$@" >"$T/.out" 2>&1; then t_fail "$name (unexpected success)"; sed 's/^/# /' "$T/.out" | tail -10
    else t_pass "$name"; fi
}
# t_eq NAME GOT WANT
t_eq() {
    if [ "$2" = "$3" ]; then t_pass "$1"; else
        t_fail "$1"; printf '#   got:  %s\n#   want: %s\n' "$2" "$3"; fi
}
# t_grep NAME PATTERN FILE
t_grep() {
    if grep -qE -- "$2" "$3"; then t_pass "$1"; else
        t_fail "$1"; echo "# no match for /$2/ in:"; sed 's/^/#   /' "$3" | head -20; fi
}

# t_planted TARGET PATTERN CMD...: runs CMD in a process that first makes PATTERN (with %P
# replaced by its own PID, which exec keeps for CMD) a symlink to TARGET: a link planted
# where a program that names its temp files after its PID would write.
t_planted() {
    bash -c 'ln -s "$1" "${2//%P/$$}"; shift 2; exec "$@"' _ "$@"
}

# A busybox rootfs (from Debian's busybox-static) imported as busybox:latest.
t_busybox_rootfs() { # DIR
    "$MKIMG_TOP/samples/busybox-rootfs.sh" "$1"
}
t_import_busybox() {
    t_busybox_rootfs "$T/bbroot"
    "$MKIMG" import "$T/bbroot" busybox:latest >/dev/null
}

# t_layers STORE TAG: the layers of image TAG in STORE (hex digests), one a line.
# t_same_layers STORE_A STORE_B TAG N: image TAG has N layers in both stores, byte for byte
# the same (cmp).
t_layers() { MKIMG_ROOT=$1 "$MKIMG" inspect "$2" | python3 -c \
    'import json,sys; print("\n".join(l.split(":")[1] for l in json.load(sys.stdin)[0]["Layers"]))'; }
t_same_layers() {
    paste <(t_layers "$1" "$3") <(t_layers "$2" "$3") >"$T/.pairs"
    test "$(wc -l <"$T/.pairs")" = "$4" || return 1
    local a b
    while read -r a b; do
        cmp "$1/blobs/sha256/$a" "$2/blobs/sha256/$b" || return 1
    done <"$T/.pairs"
}

# Debian's busybox has no adduser/addgroup applets: minimal ones for the cases that use them
# ("adduser [-D] [-H] [-h HOME] NAME": uid and a group of its own from 1000 up).
t_user_tools() { # ROOTFS
    mkdir -p "$1/usr/sbin"
    cat >"$1/usr/sbin/adduser" <<'SH'
#!/bin/sh
home= nohome=
while [ $# -gt 0 ]; do
    case $1 in -h) home=$2; shift 2 ;; -H) nohome=1; shift ;; -*) shift ;; *) name=$1; shift ;; esac
done
id=$(awk -F: 'BEGIN{m=999} $3>m && $3<60000 {m=$3} END{print m+1}' /etc/passwd /etc/group)
home=${home:-/home/$name}
echo "$name:x:$id:$id::$home:/bin/sh" >>/etc/passwd
echo "$name:x:$id:" >>/etc/group
[ -n "$nohome" ] || { mkdir -p "$home" && chown "$id:$id" "$home"; }
SH
    cat >"$1/usr/sbin/addgroup" <<'SH'
#!/bin/sh
id=$(awk -F: 'BEGIN{m=999} $3>m && $3<60000 {m=$3} END{print m+1}' /etc/passwd /etc/group)
echo "$1:x:$id:" >>/etc/group
SH
    chmod 755 "$1/usr/sbin/adduser" "$1/usr/sbin/addgroup"
}
# t_need CMD: the test is skipped (and ends here) when CMD is not installed.
t_need() {
    command -v "$1" >/dev/null && return 0
    t_skip "$1 is not installed"
    t_done
    exit 0
}
t_done() {
    if [ -s "$T/.not-found" ]; then
        t_fail "commands not found: $(sort -u "$T/.not-found" | paste -sd ' ' -)"
    fi
    echo "1..$t_n"
    [ "$t_failed" = 0 ]
}
