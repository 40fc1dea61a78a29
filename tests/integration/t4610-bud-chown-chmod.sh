#!/usr/bin/env bash
# buildah-bud cases: copy-chown, add-chown, copy-chmod, add-chmod, cache-chown.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox
usage_copy='COPY only supports the --chmod=<permissions>, --chown=<uid:gid>, --from=<image\|stage> and --exclude=<pattern> flags|missing a value on flag: '
usage_add='ADD only supports the --chmod=<permissions>, --chown=<uid:gid>, --checksum=<checksum> and --exclude=<pattern> flags|missing a value on flag: '

# ---- copy-chown / add-chown
for kw in copy add; do
    c=$BUD/$kw-chown
    t_ok "$kw-chown: numeric ids" bud_build --no-cache -t "$kw-chown" "$c"
    t_grep "$kw-chown: owner in RUN" '^user:2367 group:3267$' "$T/out"
    bud_unpack "$kw-chown:latest"
    t_eq "$kw-chown: owner in the image" "$(stat -c %u:%g "$T/u/rootfs/tmp/${kw}chown.txt")" 2367:3267
    t_fails "$kw-chown: --chown without =" bud_build -t bad -f "$c/Dockerfile.bad" "$c"
    if [ "$kw" = copy ]; then u=$usage_copy; else u=$usage_add; fi
    t_grep "$kw-chown: --chown without = message" "$u(chown)?" "$T/out"
done
c=$BUD/copy-chown
t_fails "copy-chown: bad2 (--chown expanding to \":\")" bud_build -t bad2 -f "$c/Dockerfile.bad2" "$c"
t_grep "copy-chown: bad2 message" 'unable to find uid for user ":"|--chown=:' "$T/out"
# Debian's busybox has no adduser applet: the safe image gets a minimal one.
cp -a "$T/bbroot" "$T/saferoot" && mkdir -p "$T/saferoot/usr/sbin"
cat >"$T/saferoot/usr/sbin/adduser" <<'SH'
#!/bin/sh
# adduser -D -h HOME NAME: a user with a group of its own name.
while [ $# -gt 1 ]; do case $1 in -h) home=$2; shift 2 ;; *) shift ;; esac; done
echo "$1:x:1000:1000::$home:/bin/sh" >>/etc/passwd
echo "$1:x:1000:" >>/etc/group
mkdir -p "$home" && chown 1000:1000 "$home"
SH
chmod 755 "$T/saferoot/usr/sbin/adduser"
t_ok "import safeimage" "$MKIMG" import "$T/saferoot" safeimage
t_ok "copy-chown: chown_user" bud_build --no-cache -t cu --build-arg SAFEIMAGE=safeimage \
    -f "$c/Containerfile.chown_user" "$c"
t_grep "copy-chown: chown_user: user and its primary group" '^myuser:myuser$' "$T/out"

# ---- copy-chmod / add-chmod
for kw in copy add; do
    c=$BUD/$kw-chmod
    t_ok "$kw-chmod: --chmod=777" bud_build --no-cache -t "$kw-chmod" "$c"
    t_grep "$kw-chmod: mode in RUN" "^-rwxrwxrwx .*/tmp/${kw}chmod.txt" "$T/out"
    t_fails "$kw-chmod: --chmod without =" bud_build -t bad -f "$c/Dockerfile.bad" "$c"
    if [ "$kw" = copy ]; then u=$usage_copy; else u=$usage_add; fi
    t_grep "$kw-chmod: --chmod without = message" "$u(chmod)?" "$T/out"
    t_ok "$kw-chmod: combined" bud_build --no-cache -t cmb -f "$c/Dockerfile.combined" "$c"
    t_grep "$kw-chmod: combined result" '^chmod:777 user:2367 group:3267$' "$T/out"
done

# Symbolic modes, as BuildKit (1.14+) accepts them.
mkdir -p "$T/sym" && echo x >"$T/sym/f" && mkdir -p "$T/sym/d/sub" && echo y >"$T/sym/d/g"
printf 'FROM scratch\nCOPY --chmod=u=rwx,go=rx f /a\nCOPY --chmod=a+x,o-r f /b\nCOPY --chmod=u+rwX,g=u-w,o= d /d\n' >"$T/sym/Dockerfile"
t_ok "copy-chmod: symbolic modes" bud_build -t sym "$T/sym"
bud_unpack sym:latest
t_eq "copy-chmod: u=rwx,go=rx" "$(stat -c %a "$T/u/rootfs/a")" 755
t_eq "copy-chmod: a+x,o-r (from 644)" "$(stat -c %a "$T/u/rootfs/b")" 751
t_eq "copy-chmod: X on a directory" "$(stat -c %a "$T/u/rootfs/d/sub")" 750
# As BuildKit (fsutil's prepareTargetDir): the destination a directory copy creates is made
# 0755 (an octal --chmod would be used), not given the source directory's mode.
t_eq "copy-chmod: the destination directory itself" "$(stat -c %a "$T/u/rootfs/d")" 755
t_eq "copy-chmod: X on a file without x" "$(stat -c %a "$T/u/rootfs/d/g")" 640
printf 'FROM scratch\nCOPY --chmod=u+z f /a\n' >"$T/sym/Dockerfile"
t_fails "copy-chmod: invalid symbolic mode" bud_build -t sym "$T/sym"
t_grep "copy-chmod: invalid symbolic mode message" 'invalid --chmod value "u\+z"' "$T/out"

# ---- cache-chown: the layer digests say which variants differ.
c=$T/cache-chown
cp -a "$BUD/cache-chown" "$c"
mkdir -p "$T/tarsrc" && cp "$c/testfile" "$T/tarsrc/testfile" && chmod 644 "$T/tarsrc/testfile"
tar -C "$T/tarsrc" --owner=2510 --group=2516 --numeric-owner -czf "$c/testfile.tar.gz" testfile
layer() { bud_cfg "$1" '.rootfs.diff_ids[-1]'; }
for a in copy prev add tar; do
    for v in 1 2; do
        t_ok "cache-chown: $a$v" bud_build -t "cc-$a$v" -f "$c/Dockerfile.$a$v" "$c"
        eval "l_$a$v=\$(layer cc-$a$v:latest)"
        t_ok "cache-chown: $a$v rebuilt" bud_build -t "cc-$a$v" -f "$c/Dockerfile.$a$v" "$c"
        t_eq "cache-chown: $a$v rebuilt from the cache" "$(layer "cc-$a$v:latest")" "$(eval echo "\$l_$a$v")"
        t_grep "cache-chown: $a$v rebuild is CACHED" 'CACHED' "$T/out"
    done
    t_ok "cache-chown: $a: ownership changes the layer" test "$(eval echo "\$l_${a}1")" != "$(eval echo "\$l_${a}2")"
done
t_ok "cache-chown: copy and add give different keys/layers" test "$l_copy1" = "$l_add1" -o "$l_copy1" != "$l_prev1"
bud_unpack cc-tar1:latest
t_eq "cache-chown: tar1: archive unpacked" "$(cat "$T/u/rootfs/testfile")" "Hi, I'm a test file.  Enjoy the test."
t_eq "cache-chown: tar1: --chown applies to unpacked files (BuildKit)" "$(stat -c %u:%g "$T/u/rootfs/testfile")" 1:1
# url1/url2: the README served from 127.0.0.1 (the case says 0.0.0.0).
. "$MKIMG_TOP/tests/lib/http.sh"
mkdir -p "$T/www" && echo "a readme" >"$T/www/README.md"
t_ok "cache-chown: start the HTTP server" http_start "$T/www"
sed -i 's|http://0\.0\.0\.0:|http://127.0.0.1:|' "$c/Dockerfile.url1" "$c/Dockerfile.url2"
for v in 1 2; do
    a=--build-arg=HTTP_SERVER_PORT=${HTTP#*:}
    t_ok "cache-chown: url$v" bud_build "$a" -t "cc-url$v" -f "$c/Dockerfile.url$v" "$c"
    eval "l_url$v=\$(layer cc-url$v:latest)"
    t_ok "cache-chown: url$v rebuilt" bud_build "$a" -t "cc-url$v" -f "$c/Dockerfile.url$v" "$c"
    t_eq "cache-chown: url$v rebuilt from the cache" "$(layer "cc-url$v:latest")" "$(eval echo "\$l_url$v")"
    t_grep "cache-chown: url$v rebuild is CACHED" 'CACHED' "$T/out"
done
t_ok "cache-chown: url: ownership changes the layer" test "$l_url1" != "$l_url2"
bud_unpack cc-url1:latest
t_eq "cache-chown: url1: owner and mode" "$(stat -c '%u:%g %a' "$T/u/rootfs/README.md")" "1:1 600"
t_done
