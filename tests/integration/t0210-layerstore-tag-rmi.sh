#!/usr/bin/env bash
# tag, rmi, and the one-line errors for unknown names and bad arguments.
. "$(dirname "$0")/../lib/test-lib.sh"

mkdir -p "$T/root/etc"
echo hi >"$T/root/etc/motd"
id=$("$MKIMG" import "$T/root" app:1)

t_ok "tag to two names" "$MKIMG" tag app:1 app:2 127.0.0.1:5000/lib/app:v2
t_eq "both tags listed" "$("$MKIMG" inspect app:1 | jq -c '.[0].RepoTags')" \
    '["app:1","app:2","127.0.0.1:5000/lib/app:v2"]'
t_eq "images lists one row per name" "$("$MKIMG" images | tail -n +2 | wc -l)" 3
t_eq "images -q lists the image once" "$("$MKIMG" images -q | wc -l)" 1
t_eq "skopeo reads a tag with a registry host" \
    "$(skopeo inspect --format '{{.Digest}}' "oci:$MKIMG_ROOT:127.0.0.1:5000/lib/app:v2" 2>&1 | cut -c1-7)" sha256:

"$MKIMG" tag nosuch x >/dev/null 2>"$T/err"; rc=$?
t_eq "tag of a missing image exits 1" "$rc" 1
t_eq "tag of a missing image says so" "$(cat "$T/err")" "mkimg: nosuch: image not known"
"$MKIMG" tag app:1 'Bad:Name' >/dev/null 2>"$T/err"; rc=$?
t_eq "tag with a bad name exits 1" "$rc" 1
t_grep "tag with a bad name says why" '^mkimg: invalid reference "Bad:Name": repository name must be lowercase$' "$T/err"
"$MKIMG" tag app:1 >/dev/null 2>"$T/err"; rc=$?
t_eq "tag without a target is a usage error" "$rc" 2

"$MKIMG" rmi app:2 >"$T/out" 2>&1; rc=$?
t_eq "rmi a name" "$rc" 0
t_eq "rmi says what it untagged" "$(cat "$T/out")" "Untagged: app:2"
"$MKIMG" inspect app:2 >/dev/null 2>"$T/err"; rc=$?
t_eq "inspect after rmi exits 1" "$rc" 1
t_eq "inspect after rmi: one-line error" "$(cat "$T/err")" "mkimg: app:2: image not known"
t_ok "other names stay" "$MKIMG" inspect app:1

"$MKIMG" rmi "$id" >"$T/out" 2>&1; rc=$?
t_eq "rmi by ID" "$rc" 0
t_grep "rmi by ID deletes" "^Deleted: $id\$" "$T/out"
t_eq "no images left" "$("$MKIMG" images -q | wc -l)" 0
"$MKIMG" rmi app:1 >/dev/null 2>"$T/err"; rc=$?
t_eq "rmi of a missing name exits 1" "$rc" 1
t_eq "rmi of a missing name: one-line error" "$(cat "$T/err")" "mkimg: app:1: image not known"

"$MKIMG" import "$T/nonexistent" x >/dev/null 2>"$T/err"; rc=$?
t_eq "import of a missing path exits 1" "$rc" 1
t_grep "import of a missing path names it" "^mkimg: importing \"$T/nonexistent\": opening \"$T/nonexistent\": No such file or directory\$" "$T/err"
"$MKIMG" import "$T/root" >/dev/null 2>&1; rc=$?
t_eq "import without a name is a usage error" "$rc" 2
"$MKIMG" images --bogus >/dev/null 2>&1; rc=$?
t_eq "images with a bad option is a usage error" "$rc" 2
t_done
