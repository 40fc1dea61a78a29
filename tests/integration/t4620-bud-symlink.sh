#!/usr/bin/env bash
# buildah-bud cases: symlink, dest-symlink, dest-symlink-dangling, dest-final-slash,
# workdir-symlink.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox
cp -a "$T/bbroot" "$T/ubroot" && ln -s busybox "$T/ubroot/bin/bash"
t_ok "import ubuntu" "$MKIMG" import "$T/ubroot" ubuntu
link() { readlink "$T/u/rootfs$1"; }

# ---- symlink
# VOLUME is metadata only, as in BuildKit (dockerfile2llb/convert.go, dispatchVolume): no
# directory is made at the end of the symlinks, so the cases that write there afterwards fail
# (Buildah's own expectations assume its VOLUME, which creates the directory).
c=$BUD/symlink
t_fails "symlink: VOLUME through two symlinks creates nothing" bud_build --no-cache -t sl "$c"
t_grep "symlink: the RUN writing below the volume fails" 'blah.txt' "$T/out"

t_ok "symlink: relative-symlink" bud_build --no-cache -t slr -f "$c/Dockerfile.relative-symlink" "$c"
bud_unpack slr:latest
t_ok "symlink: relative-symlink: /log/test not created" test ! -e "$T/u/rootfs/log/test"
t_eq "symlink: relative-symlink: /var/data kept" "$(link /var/data)" ../data
t_ok "symlink: relative-symlink: /var/data/empty readable" test -f "$T/u/rootfs/data/empty"
t_eq "symlink: relative-symlink: Volumes config" "$(bud_cfg slr:latest '.config.Volumes|keys')" '["/test-log/test","/var/data"]'

t_fails "symlink: multiple-symlinks creates nothing" bud_build --no-cache -t slm -f "$c/Dockerfile.multiple-symlinks" "$c"
t_grep "symlink: multiple-symlinks: the RUN writing below the volume fails" 'blah.txt' "$T/out"

t_ok "symlink: symlink-points-to-itself: VOLUME does not resolve it" \
    bud_build --no-cache -t sls -f "$c/Dockerfile.symlink-points-to-itself" "$c"
t_eq "symlink: symlink-points-to-itself: Volumes config" "$(bud_cfg sls:latest '.config.Volumes|keys')" '["/test-log/test"]'

t_ok "symlink: absolute-symlink" bud_build --no-cache -t sla -f "$c/Dockerfile.absolute-symlink" "$c"
bud_unpack sla:latest
t_ok "symlink: absolute-symlink: regular file" test -f "$T/u/rootfs/bin/myexe" -a ! -L "$T/u/rootfs/bin/myexe"
t_eq "symlink: absolute-symlink: target's content" "$(cat "$T/u/rootfs/bin/myexe")" symlink-test

t_ok "symlink: absolute-dir-symlink" bud_build --no-cache -t sld -f "$c/Dockerfile.absolute-dir-symlink" "$c"
bud_unpack sld:latest
t_eq "symlink: absolute-dir-symlink: dir contents" "$(ls "$T/u/rootfs/data")" myexe

r=$T/replace && mkdir "$r" && cp "$c/Dockerfile.replace-symlink" "$r/" && ln -s Dockerfile.replace-symlink "$r/symlink" &&
    echo foo >"$r/.dockerignore"
t_ok "symlink: replace-symlink" bud_build --no-cache -t slrep -f "$r/Dockerfile.replace-symlink" "$r"
bud_unpack slrep:latest
t_eq "symlink: replace-symlink: symlink copied as a symlink" "$(link /symlink)" Dockerfile.replace-symlink

# The archives the conformance copy left out, rebuilt from their description.
a=$T/archives && mkdir -p "$a/testdir"
printf 'This is a blank text file for tar ball testing with Buildah.\n' >"$a/testdir/testfile.txt"
chmod 755 "$a/testdir" && chmod 644 "$a/testdir/testfile.txt"
s=$T/symlink && cp -a "$c" "$s"
tar -C "$a" --owner=0 --group=0 --numeric-owner -cf "$s/tarball.tar" testdir
printf 'This is just a little text file to verify that\ndata is inside a test tarball.\n' >"$a/testdir/testfile.txt"
tar -C "$a" --owner=0 --group=0 --numeric-owner -czf "$s/tarball.tar.gz" testdir
ln -s tarball.tar "$s/tarball_latest.tar" && ln -s tarball.tar.gz "$s/tarball_latest.tar.gz"
for f in add-tar-with-link add-tar-gz-with-link; do
    t_ok "symlink: $f" bud_build -t "$f" -f "$s/Containerfile.$f" "$s"
    bud_unpack "$f:latest"
    t_ok "symlink: $f: archive unpacked" test -f "$T/u/rootfs/tmp/testdir/testfile.txt"
done
t_eq "symlink: add-tar-gz-with-link: content" "$(head -1 "$T/u/rootfs/tmp/testdir/testfile.txt")" \
    "This is just a little text file to verify that"
t_fails "symlink: -f symlink/Dockerfile (read; fails at the RUN after VOLUME)" bud_build -t slf -f "$c/Dockerfile" "$BUD"
t_grep "symlink: -f symlink/Dockerfile: the Dockerfile was found" 'blah.txt' "$T/out"

# ---- dest-symlink
c=$BUD/dest-symlink
t_ok "dest-symlink" bud_build --no-cache -t ds "$c"
bud_unpack ds:latest
t_ok "dest-symlink: file lands in the link's target dir" cmp "$T/u/rootfs/usr/local/hbase/Dockerfile" "$c/Dockerfile"
t_eq "dest-symlink: /etc/hbase stays a symlink" "$(link /etc/hbase)" /usr/local/hbase

# ---- dest-symlink-dangling
c=$BUD/dest-symlink-dangling
t_ok "dest-symlink-dangling" bud_build --no-cache -t dsd "$c"
bud_unpack dsd:latest
t_ok "dest-symlink-dangling: /symlink/Dockerfile" test -s "$T/u/rootfs/symlink/Dockerfile"
t_eq "dest-symlink-dangling: /src stays a symlink" "$(link /src)" /symlink

# ---- dest-final-slash
c=$BUD/dest-final-slash
t_ok "dest-final-slash" bud_build --no-cache -t dfs "$c"
bud_unpack dfs:latest
t_ok "dest-final-slash: /test/ls" test -f "$T/u/rootfs/test/ls"

# ---- workdir-symlink
c=$BUD/workdir-symlink
t_ok "workdir-symlink: Dockerfile" bud_build --no-cache -t ws1 "$c"
bud_unpack ws1:latest
t_eq "workdir-symlink: /tempest stays a symlink" "$(link /tempest)" /var/lib/tempest
t_eq "workdir-symlink: chmod 664" "$(stat -c %A "$T/u/rootfs/etc/notareal.conf")" -rw-rw-r--
t_ok "workdir-symlink: Dockerfile-2" bud_build --no-cache -t ws2 -f "$c/Dockerfile-2" "$c"
bud_unpack ws2:latest
t_eq "workdir-symlink: Dockerfile-2: link kept" "$(link /tempest)" /var/lib/tempest
t_ok "workdir-symlink: Dockerfile-2: copied through the link" cmp "$T/u/rootfs/var/lib/tempest/Dockerfile-2" "$c/Dockerfile-2"
t_ok "workdir-symlink: Dockerfile-3" bud_build --no-cache -t ws3 -f "$c/Dockerfile-3" "$c"
bud_unpack ws3:latest
t_eq "workdir-symlink: Dockerfile-3: link kept" "$(link /tempest)" /var/lib/tempest
t_ok "workdir-symlink: Dockerfile-3: lowerdir/Dockerfile-3" test -f "$T/u/rootfs/var/lib/tempest/lowerdir/Dockerfile-3"
t_ok "workdir-symlink: Dockerfile-3: /tempest/Dockerfile-3" test -f "$T/u/rootfs/var/lib/tempest/Dockerfile-3"
t_done
