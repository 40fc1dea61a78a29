#!/usr/bin/env bash
# COPY and ADD give the root file system BuildKit gives (issue 13, reproducers 1, 2, 3, 5, 6
# and 9; the contexts are in tests/data/fidelity/). BuildKit's rules are fsutil's copy
# (prepareTargetDir, MkdirAll with the --chown user, FollowLinks, ResolveWildcards) and the
# file backend's readUser.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
data=$MKIMG_TOP/tests/data/fidelity
# build NAME: builds a copy of tests/data/fidelity/NAME (after prepare_NAME, if any) and
# unpacks the image in $T/NAME.
build() {
    cp -a "$data/$1" "$T/ctx-$1"
    if declare -F "prepare_$1" >/dev/null; then "prepare_$1" "$T/ctx-$1"; fi
    t_ok "$1: builds" "$MKIMG" build -q -t "$1" "$T/ctx-$1"
    umoci unpack --image "$MKIMG_ROOT:$1:latest" "$T/$1" >/dev/null 2>&1
}
meta() { stat -c '%a %u:%g' "$@"; }

# 1. An existing destination directory keeps its mode and owner; one the copy creates is
# made 0755 (the source directory's own mode is not copied); directories below it take the
# source's.
prepare_copy-existing-dir() { chmod 700 "$1/d"; chmod 750 "$1/stuff" "$1/stuff/sub"; }
build copy-existing-dir
r=$T/copy-existing-dir/rootfs
t_eq "COPY d/ /tmp/ leaves /tmp at 1777" "$(meta "$r/tmp")" "1777 0:0"
t_eq "COPY stuff /root leaves /root at 0700" "$(meta "$r/root")" "700 0:0"
t_eq "COPY --chown into an existing 2775 7:7 dir leaves it alone" "$(meta "$r/srv/shared")" "2775 7:7"
t_eq "the copied subdirectory is --chown'd with its own mode" "$(meta "$r/srv/shared/sub")" "750 33:33"
t_eq "a destination the copy creates is 0755" "$(meta "$r/fresh")" "755 0:0"
t_eq "the files are there" "$(cat "$r/tmp/f" "$r/root/sub/g")" "$(printf 'd\ns')"

# 2. --chown owns the parents COPY and ADD create.
prepare_copy-chown-parents() {
    mkdir -p "$T/tarsrc/lib" && echo m >"$T/tarsrc/lib/m"
    tar -C "$T/tarsrc" --owner=0 --group=0 -cf "$1/t.tar" lib
}
build copy-chown-parents
r=$T/copy-chown-parents/rootfs
t_eq "COPY --chown=33:33 f /opt/a/b/: /opt/a" "$(meta "$r/opt/a")" "755 33:33"
t_eq "COPY --chown=33:33 f /opt/a/b/: /opt/a/b" "$(meta "$r/opt/a/b")" "755 33:33"
t_eq "COPY --chown=33:33 f /opt/a/b/: the file" "$(meta "$r/opt/a/b/f")" "644 33:33"
t_eq "COPY --chown=33:33 f /opt/a/b/: /opt, created too" "$(meta "$r/opt")" "755 33:33"
t_eq "ADD --chown=44:44 t.tar /srv/x/y/: /srv/x" "$(meta "$r/srv/x")" "755 44:44"
t_eq "ADD --chown=44:44 t.tar /srv/x/y/: /srv/x/y" "$(meta "$r/srv/x/y")" "755 44:44"
t_eq "ADD --chmod=0640 t.tar /srv/m/: /srv/m is 0755" "$(meta "$r/srv/m")" "755 0:0"
t_eq "ADD --chown=44:44: the archive's entries" "$(stat -c %u:%g "$r/srv/x/y/lib" "$r/srv/x/y/lib/m" | tr '\n' ' ')" "44:44 44:44 "

# 3. --chown=UID alone: gid = uid (a name still takes the user's primary group).
build copy-chown-uid-alone
r=$T/copy-chown-uid-alone/rootfs
t_eq "--chown=1700 gives 1700:1700" "$(stat -c %u:%g "$r/f")" "1700:1700"
t_eq "--chown=app gives app's primary group" "$(stat -c %u:%g "$r/g")" "1700:100"

# 5. A wildcard in a middle component: the non-matches are skipped.
build copy-wildcard-middle
r=$T/copy-wildcard-middle/rootfs
t_eq "COPY pk/*/package.json: the last match wins, README.md skipped" "$(cat "$r/m/package.json")" '{"name":"b"}'
t_eq "nothing else was copied" "$(ls "$r/m")" "package.json"
t_eq "COPY *.conf matches .hidden.conf too" "$(ls -A "$r/conf" | tr '\n' ' ')" ".hidden.conf app.conf "

# 6. A source symlink to a directory is followed (top level only: links inside stay links).
build copy-symlink-dir-source
r=$T/copy-symlink-dir-source/rootfs
t_ok "COPY current /opt/x: a directory, not a symlink" test -d "$r/opt/x" -a ! -L "$r/opt/x"
t_eq "COPY current /opt/x: its files" "$(cat "$r/opt/x/bin/tool")" tool
t_eq "a symlink inside is kept" "$(readlink "$r/opt/x/bin/alias")" tool
t_eq "COPY current/bin /opt/y: through the link" "$(cat "$r/opt/y/tool")" tool

# 9. COPY --parents with "**" recurses.
build copy-parents-doublestar
r=$T/copy-parents-doublestar/rootfs
t_eq "COPY --parents s/**/*.proto /p/" "$(cd "$r/p" && find . -type f | sort | tr '\n' ' ')" \
    "./s/api/a.proto ./s/api/v1/b.proto ./s/api/v1/inner/c.proto ./s/top.proto "
t_done
