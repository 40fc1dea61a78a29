#!/usr/bin/env bash
# build's inputs as docker takes them: options after the context, the Dockerfile from stdin
# (-f -), the context as a tar (plain or gzip) or a bare Dockerfile on stdin (build -); a tar
# context is unpacked inside a private temp dir (no path escapes, its Dockerfile resolved inside
# it) that is gone afterwards, also after Ctrl-C.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
c=$T/ctx; mkdir -p "$c/sub"
printf 'FROM busybox\nCOPY a /a\n' >"$c/Dockerfile"
printf 'FROM busybox\nCOPY a /alt\n' >"$c/sub/alt.Dockerfile"
echo from-context >"$c/a"

t_ok "options after the context" "$MKIMG" build "$c" -q -t app:2 --label after=yes
t_ok "the image got the tag given after the context" "$MKIMG" inspect app:2
t_grep "and the label" '"after": *"yes"' <("$MKIMG" inspect app:2)

printf 'FROM busybox\nLABEL from=stdin\nCOPY a /a\n' |
    "$MKIMG" build -q -t stdin-df -f - "$c" >/dev/null 2>"$T/err"
t_eq "-f - builds" "$?" 0
t_grep "-f - read the Dockerfile from stdin" '"from": *"stdin"' <("$MKIMG" inspect stdin-df)
printf 'FROM busybox\nFROBNICATE x\n' | "$MKIMG" build -q -f - "$c" >/dev/null 2>"$T/err"
t_eq "-f - errors name the Dockerfile as docker does" "$(head -c 37 "$T/err")" \
    'mkimg: Dockerfile:2: unknown instruct'

tar -C "$c" -cf "$T/ctx.tar" .
tar -C "$c" -czf "$T/ctx.tar.gz" .
t_ok "build - with a tar on stdin" bash -c '"$1" build -q -t from-tar - <"$2"' _ "$MKIMG" "$T/ctx.tar"
t_eq "the tar was the context" "$("$MKIMG" run from-tar cat /a)" from-context
t_ok "build - with a .tar.gz on stdin" \
    bash -c '"$1" build -q -t from-tgz - <"$2"' _ "$MKIMG" "$T/ctx.tar.gz"
t_eq "the .tar.gz was the context" "$("$MKIMG" run from-tgz cat /a)" from-context
t_ok "-f names a file inside a tar context" \
    bash -c '"$1" build -q -t alt -f sub/alt.Dockerfile - <"$2"' _ "$MKIMG" "$T/ctx.tar"
t_eq "the tar's sub/alt.Dockerfile was used" "$("$MKIMG" run alt cat /alt)" from-context
t_ok "build - with a bare Dockerfile on stdin" \
    bash -c 'printf "FROM busybox\nLABEL bare=1\n" | "$1" build -q -t bare -' _ "$MKIMG"
t_grep "the bare Dockerfile was used" '"bare": *"1"' <("$MKIMG" inspect bare)

echo x | "$MKIMG" build -f - - >/dev/null 2>"$T/err"; rc=$?
t_eq "stdin cannot be both: exit 2" "$rc" 2
t_eq "stdin cannot be both: message" "$(cat "$T/err")" \
    'mkimg: build: the build context and the Dockerfile cannot both come from stdin'

# A hostile tar: its Dockerfile a symlink to a host file, an entry climbing out.
h=$T/hostile; mkdir -p "$h"
ln -s /etc/passwd "$h/Dockerfile"
tar -C "$h" -cf "$T/link.tar" Dockerfile
"$MKIMG" build - <"$T/link.tar" >/dev/null 2>"$T/err"; rc=$?
t_eq "a Dockerfile symlink leading out is not followed" "$rc:$(cat "$T/err")" \
    '1:mkimg: no "Dockerfile" in the build context'
python3 - "$T/escape.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for name, data in (("Dockerfile", b"FROM busybox\n"), ("../../escaped-by-tar", b"x")):
        i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
PY
"$MKIMG" build - <"$T/escape.tar" >/dev/null 2>"$T/err"; rc=$?
t_eq "a ../ entry is refused" "$rc" 1
t_grep "the error names the entry" 'escaped-by-tar' "$T/err"
t_ok "and lands nowhere" bash -c '! find "$1" -name escaped-by-tar | grep -q .' _ "$T"
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0

# Ctrl-C while the context is still streaming in: the temp dir goes too.
mkfifo "$T/fifo"
"$MKIMG" build - <"$T/fifo" >/dev/null 2>"$T/err" &
pid=$!
exec 3>"$T/fifo"
tar -C "$c" -cf - . >&3
for i in $(seq 100); do ls "$MKIMG_ROOT/tmp" 2>/dev/null | grep -q '^context-' && break; sleep 0.1; done
t_ok "the context is unpacked into a store temp dir" bash -c "ls '$MKIMG_ROOT/tmp' | grep -q '^context-'"
kill -INT "$pid"
wait "$pid"; rc=$?
exec 3>&-
t_eq "Ctrl-C: exit 130" "$rc" 130
t_eq "Ctrl-C: no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
