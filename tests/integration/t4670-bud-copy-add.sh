#!/usr/bin/env bash
# buildah-bud cases: add-file, copy-create-absolute-path, add-checksum, copy-globs,
# copy-exclude, copy-parents.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox
cp -a "$T/bbroot" "$T/ubroot" && ln -s busybox "$T/ubroot/bin/bash"
t_ok "import ubuntu" "$MKIMG" import "$T/ubroot" ubuntu

# ---- add-file
t_ok "add-file" bud_build --no-cache -t af "$BUD/add-file"
bud_unpack af:latest
for f in /var/www/file /var/file /var/file2; do
    t_ok "add-file: $f" test -e "$T/u/rootfs$f"
done

# ---- copy-create-absolute-path (and the same with ADD)
c=$BUD/copy-create-absolute-path
t_ok "copy-create-absolute-path" bud_build --no-cache -t cca "$c"
t_grep "copy-create-absolute-path: parents 755" '^permissions=755$' "$T/out"
a=$T/add-abs && cp -a "$c" "$a" && sed -i 's/^COPY /ADD /' "$a/Dockerfile"
t_ok "add-create-absolute-path" bud_build --no-cache -t aca "$a"
t_grep "add-create-absolute-path: parents 755" '^permissions=755$' "$T/out"
r=$T/add-rel && cp -a "$c" "$r" && printf 'FROM ubuntu\nADD distutils.cfg lib/custom/distutils.cfg\nRUN stat -c "permissions=%%a" /lib/custom\n' >"$r/Dockerfile"
t_ok "add-create-relative-path" bud_build --no-cache -t acr "$r"
t_grep "add-create-relative-path: parents 755" '^permissions=755$' "$T/out"

# ---- add-checksum
c=$BUD/add-checksum
bud_na "add-checksum: Containerfile" "ADD of an https URL on the internet needs network access (t4410 covers --checksum locally)"
bud_na "add-checksum: bad-checksum" "ADD of an https URL on the internet needs network access (t4410 covers the mismatch locally)"
# "build proxy - ADD URL": a dead proxy on 127.0.0.1 fails the download; nothing leaves the host.
env http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 \
    no_proxy= NO_PROXY= "$MKIMG" build --progress=plain -t ac -f "$c/Containerfile" "$c" >"$T/out" 2>&1
t_eq "add-checksum: proxy: the build fails" "$?" 1
t_grep "add-checksum: proxy: connection refused by the proxy" '127\.0\.0\.1 port 1.*(refused|connect)' "$T/out"
t_fails "add-checksum: --checksum without =" bud_build -t ac -f "$c/Containerfile.bad" "$c"
t_grep "add-checksum: --checksum without = message" 'missing a value on flag: checksum' "$T/out"

# ---- copy-globs
c=$BUD/copy-globs
t_ok "copy-globs: *.txt into a new dir" bud_build -t cg -f "$c/Containerfile" "$c"
bud_unpack cg:latest
t_eq "copy-globs: /testdir holds both" "$(ls "$T/u/rootfs/testdir" | tr '\n' ' ')" "test1.txt test2.txt "
t_ok "copy-globs: one glob matching nothing is fine (BuildKit)" bud_build -t cg -f "$c/Containerfile.missing" "$c"
bud_unpack cg:latest
t_eq "copy-globs: missing: /testdir holds the matches" "$(ls "$T/u/rootfs/testdir" | tr '\n' ' ')" "test1.txt test2.txt "
t_fails "copy-globs: nothing matched at all" bud_build -t cg -f "$c/Containerfile.bad" "$c"
t_grep "copy-globs: nothing matched message" 'no source files were specified or matched|matched nothing' "$T/out"

# ---- copy-exclude
c=$BUD/copy-exclude
t_ok "copy-exclude: --exclude=*txt" bud_build --no-cache -t ce -f "$c/Containerfile" "$c"
bud_unpack ce:latest
t_ok "copy-exclude: test1.txt excluded" test ! -e "$T/u/rootfs/testdir/test1.txt"
t_ok "copy-exclude: Containerfile kept" test -e "$T/u/rootfs/testdir/Containerfile"
t_ok "copy-exclude: repeated --exclude" bud_build --no-cache -t ce2 -f "$c/Containerfile.missing" "$c"
bud_unpack ce2:latest
t_ok "copy-exclude: test2.txt excluded" test ! -e "$T/u/rootfs/testdir/test2.txt"
t_ok "copy-exclude: Containerfile.missing kept" test -e "$T/u/rootfs/testdir/Containerfile.missing"

# ---- copy-parents
c=$BUD/copy-parents
t_ok "copy-parents" bud_build --no-cache -t cp -f "$c/Containerfile" "$c"
for p in /no_parents/a.txt /parents/x/a.txt /parents/y/a.txt /parents_file_point/y/a.txt \
    /parents_file_point/y/b.txt /parents_dir_point/y/a.txt /parents_dir_point/y/b.txt; do
    t_grep "copy-parents: $p" "^$p\$" "$T/out"
done
t_ok "copy-parents: hardlinks" bud_build --no-cache -t cph -f "$c/Containerfile-hardlinks" "$c"
bud_unpack cph:latest
for d in /parents/x /parents_dir_point; do
    t_eq "copy-parents: $d: symlink target kept" "$(readlink "$T/u/rootfs$d/z/symlink-b.txt")" /x/z/b.txt
    t_eq "copy-parents: $d: y/b.txt hardlinked" "$(stat -c %i:%h "$T/u/rootfs$d/y/b.txt")" \
        "$(stat -c %i:%h "$T/u/rootfs$d/z/hardlink-y-b.txt")"
    t_eq "copy-parents: $d: link count 2" "$(stat -c %h "$T/u/rootfs$d/z/a.txt")" 2
done
t_done
