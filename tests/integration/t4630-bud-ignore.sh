#!/usr/bin/env bash
# buildah-bud cases: dockerignore, dockerignore2, dockerignore3, dockerignore4, containerignore,
# container-ignoresymlink, heredoc-ignore.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox docker.io/alpine:latest

# ---- dockerignore
c=$BUD/dockerignore
t_fails "dockerignore: COPY of an ignored dir fails" bud_build -t di "$c"
t_grep "dockerignore: message" 'subdir.*(no such file or directory|not found in build context or excluded)' "$T/out"
check_succeed() { # NAME IMAGE
    bud_unpack "$2:latest"
    t_ok "$1: test2.txt copied" test -f "$T/u/rootfs/test2.txt"
    t_ok "$1: test1.txt ignored" test ! -e "$T/u/rootfs/test1.txt"
    t_ok "$1: subdir/sub2.txt ignored" test ! -e "$T/u/rootfs/subdir/sub2.txt"
    # BuildKit walks into subdir for the wildcard exception "!*/sub1*" (buildah drops subdir).
    t_ok "$1: subdir/sub1.txt re-included (BuildKit)" test -f "$T/u/rootfs/subdir/sub1.txt"
}
t_ok "dockerignore: succeed" bud_build -t dis -f "$c/Dockerfile.succeed" "$c"
check_succeed dockerignore dis
i=$T/ignorefile && mkdir "$i" && cp -a "$c/." "$i/" && mv "$i/.dockerignore" "$T/myignore"
t_ok "dockerignore: --ignorefile" bud_build -t dif --ignorefile "$T/myignore" -f "$i/Dockerfile.succeed" "$i"
check_succeed "dockerignore --ignorefile" dif

# ---- containerignore: .containerignore wins over .dockerignore
c=$BUD/containerignore
t_fails "containerignore: COPY of an ignored dir fails" bud_build -t ci "$c"
t_ok "containerignore: succeed" bud_build -t cis -f "$c/Dockerfile.succeed" "$c"
check_succeed containerignore cis

# ---- dockerignore2: symlinks copied as symlinks, never followed
d=$T/di2 && cp -a "$BUD/dockerignore2" "$d"
ln -s subdir "$d/symlink" && ln -s circular-link "$d/subdir/circular-link" &&
    ln -s no-such-file "$d/subdir/dangling-link"
t_ok "dockerignore2" bud_build -t di2 "$d"
bud_unpack di2:latest
got=$(cd "$T/u/rootfs" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort | while read -r p; do
    if [ -L "$p" ]; then echo "$p($(readlink "$p"))"; else echo "$p"; fi; done | tr '\n' ' ')
t_eq "dockerignore2: exactly the context, symlinks as symlinks" "$got" \
    ".dockerignore Dockerfile subdir subdir/circular-link(circular-link) subdir/dangling-link(no-such-file) subdir/sub1.txt subdir/subsubdir subdir/subsubdir/subsub1.txt symlink(subdir) "

# ---- dockerignore3 / dockerignore4
for n in 3 4; do
    c=$BUD/dockerignore$n
    f=$c/Dockerfile && [ "$n" = 4 ] && f=$c/Dockerfile.test
    t_fails "dockerignore$n: COPY of an ignored file fails" bud_build -t "di$n" -f "$f" "$c"
    t_grep "dockerignore$n: message names the file" 'test1.txt' "$T/out"
    t_grep "dockerignore$n: message says it was excluded" 'excluded by \.dockerignore|filtered out' "$T/out"
    # The manifest: what /upload holds without the failing COPY.
    w=$T/di$n && mkdir -p "$w" && cp -a "$c/." "$w/" && sed -i '/COPY test1.txt/d' "$w/$(basename "$f")"
    t_ok "dockerignore$n: without the failing COPY" bud_build --no-cache -t "di$n" -f "$w/$(basename "$f")" "$w"
    sed -n '/^CUT HERE$/,/^CUT HERE$/p' "$T/out" | grep -v '^CUT HERE$' >"$T/listing"
    t_ok "dockerignore$n: /upload matches the manifest" diff "$T/listing" "$c/manifest"
done

# ---- container-ignoresymlink: an ignore file pointing outside the context is not used
d=$T/cis && cp -a "$BUD/container-ignoresymlink" "$d"
echo hello >"$T/outside-ignore" && ln -s "$T/outside-ignore" "$d/.dockerignore"
t_ok "container-ignoresymlink" bud_build --no-cache -t cis "$d"
t_grep "container-ignoresymlink: hello still copied" '^hello$' "$T/out"

# ---- heredoc-ignore: heredoc sources are not subject to the ignore file
c=$BUD/heredoc-ignore
t_ok "heredoc-ignore" bud_build --no-cache -t hi --ignorefile "$c/.containerignore" "$c"
t_grep "heredoc-ignore: first line" '^This is a file$' "$T/out"
t_grep "heredoc-ignore: second line" '^This is a line from file$' "$T/out"
t_done
