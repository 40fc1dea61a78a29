#!/usr/bin/env bash
# COPY --link / ADD --link (BuildKit): the files are copied into an empty root and that layer
# goes on top, so the content is what COPY gives, but no symlink of an earlier layer is
# followed in the destination's parents (they become plain directories) and the layer holds
# only what the copy made. With --chmod, BuildKit ignores --link; names in --chown cannot be
# resolved (no /etc/passwd in the empty root), numeric ids can.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c/dir/sub" "$T/tarsrc"
echo f >"$c/f"; echo a >"$c/dir/a"; echo b >"$c/dir/sub/b"; chmod 751 "$c/dir/sub"; chmod 640 "$c/dir/a"
ln -s a "$c/dir/ln"
echo member >"$T/tarsrc/m" && tar -C "$T/tarsrc" -cf "$c/t.tar" m
cat >"$c/Dockerfile" <<'DF'
FROM busybox
RUN mkdir -p /data /data2 && ln -s /data /link && ln -s /data2 /nolink
COPY --link f /link/f
COPY f /nolink/f
COPY --link dir/ /app-link/
COPY dir/ /app-copy/
COPY --link --chown=7:8 f /owned
ADD --link t.tar /unpacked/
DF
t_ok "build with --link" "$MKIMG" build -t lk "$c"
umoci unpack --image "$MKIMG_ROOT:lk:latest" "$T/u" >/dev/null 2>&1
r=$T/u/rootfs
t_ok "--link: the parent symlink became a directory" test -d "$r/link" -a ! -L "$r/link"
t_eq "--link: the file is in it" "$(cat "$r/link/f")" f
t_ok "--link: the symlink's old target got nothing" test ! -e "$r/data/f"
t_ok "without --link the symlink is followed" test -L "$r/nolink" -a -e "$r/data2/f"
tree() { (cd "$1" && find . -printf '%p %y %m %U:%G %l\n' | sort && find . -type f -exec cat {} + | sha256sum); }
t_eq "--link gives the same tree as COPY" "$(tree "$r/app-link")" "$(tree "$r/app-copy")"
t_eq "--link with a numeric --chown" "$(stat -c %u:%g "$r/owned")" 7:8
t_eq "ADD --link unpacks a local archive" "$(cat "$r/unpacked/m")" member
t_ok "the base layers are still seen through" test -x "$r/bin/busybox"
layer_list() { # the entries of the image's Nth layer (0-based, negative from the end)
    local d
    d=$(skopeo inspect --raw "oci:$MKIMG_ROOT:lk:latest" | jq -r ".layers[$1].digest")
    tar -tf "$MKIMG_ROOT/blobs/sha256/${d#sha256:}" | sort | tr '\n' ' '
}
t_eq "the --link layer holds only what the copy made" "$(layer_list 2)" "link/ link/f "

printf 'FROM busybox\nRUN ln -s /data /link && mkdir /data\nCOPY --link --chmod=644 f /link/f\n' >"$c/Dockerfile"
t_ok "--link with --chmod" "$MKIMG" build -t lk2 "$c"
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:lk2:latest" "$T/u" >/dev/null 2>&1
t_ok "--link with --chmod is a plain COPY (as BuildKit)" test -L "$r/link" -a -e "$r/data/f"

printf 'FROM busybox\nCOPY --link --chown=daemon f /x\n' >"$c/Dockerfile"
"$MKIMG" build -t bad "$c" >/dev/null 2>"$T/err"
t_eq "--link with a user name exits 1" "$?" 1
t_grep "--link with a user name message" '^mkimg: Dockerfile:2: .*--chown=daemon' "$T/err"
t_done
