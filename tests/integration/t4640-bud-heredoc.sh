#!/usr/bin/env bash
# buildah-bud case: heredoc (Containerfile, bash_file, she_bang, verify_mount_leak).
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox
c=$BUD/heredoc

t_ok "heredoc: Containerfile" bud_build --no-cache -t hd -f "$c/Containerfile" "$c"
for s in "print first line from heredoc" "print second line from heredoc" \
    "Heredoc writing first file" "some text of first file" "file passed to program" \
    "and it contains multiple" "(your index page goes here)" "(robots content)" "(humans content)"; do
    t_grep "heredoc: output has \"$s\"" "$(printf '%s' "$s" | sed 's/[][().*]/\\&/g')" "$T/out"
done
for p in "test6 part1" "test6 part2" "test7 part1" "test7 part2" "test7 part3" "test8 part1" \
    "test8 part2"; do
    t_grep "heredoc: this is the output of $p" "this is the output of $p" "$T/out"
done
bud_unpack hd:latest
t_eq "heredoc: ADD <<EOF keeps the leading space" "$(cat "$T/u/rootfs/index.html")" " (your index page goes here)"
t_eq "heredoc: COPY <<robots.txt" "$(cat "$T/u/rootfs/test/robots.txt")" "(robots content)"
t_eq "heredoc: COPY <<humans.txt" "$(cat "$T/u/rootfs/test/humans.txt")" "(humans content)"
t_eq "heredoc: numbered heredocs 5<< 6<<" "$(cat "$T/u/rootfs/test6.txt" | tr '\n' '|')" \
    "this is the output of test6 part1|this is the output of test6 part2|"

t_ok "heredoc: bash_file" bud_build --no-cache -t hdb -f "$c/Containerfile.bash_file" "$c"
bud_unpack hdb:latest
t_eq "heredoc: bash_file: #!/bin/sh body" "$(cat "$T/u/rootfs/test9.txt" | tr '\n\t' '|^')" "|^this is the output of test9|"
t_eq "heredoc: bash_file: <<- strips tabs" "$(cat "$T/u/rootfs/test10.txt" | tr '\n\t' '|^')" "|this is the output of test10|"

t_ok "heredoc: she_bang" bud_build --no-cache -t hds -f "$c/Containerfile.she_bang" "$c"
tr '\n' '|' <"$T/out" >"$T/out1"
t_grep "heredoc: she_bang: run by rev" '#\|this is the output of test11\|this is the output of test12' "$T/out1"

# verify_mount_leak: buildah's /dev/pipes is its own plumbing; the general rule is that
# nothing of the heredoc plumbing stays in the image.
bud_na "heredoc: verify_mount_leak /dev/pipes" "buildah serves heredocs from /dev/pipes; mkimg does not"
v=$T/leak && mkdir "$v" && grep -v 'pipes' "$c/Containerfile.verify_mount_leak" >"$v/Containerfile"
t_ok "heredoc: verify_mount_leak without /dev/pipes" bud_build --no-cache -t hdl -f "$v/Containerfile" "$v"
bud_unpack hdl:latest
(cd "$T/u/rootfs" && find . | sort) >"$T/after"
bud_unpack alpine:latest
(cd "$T/u/rootfs" && find . | sort) >"$T/before"
t_eq "heredoc: verify_mount_leak: only test.txt added" "$(comm -13 "$T/before" "$T/after" | tr '\n' ' ')" "./test.txt "
t_done
