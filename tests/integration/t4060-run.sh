#!/usr/bin/env bash
# mkimg run: the image's command in a throwaway container.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
t_ok "build hello" "$MKIMG" build -q -t hello "$MKIMG_TOP/samples/hello"
t_eq "runs the image's CMD" "$("$MKIMG" run hello 2>&1)" "hello from mkimg"
t_eq "WORKDIR and ENV apply" "$("$MKIMG" run hello sh -c 'echo $PWD $APP_HOME' 2>&1)" "/app /app"
"$MKIMG" run hello sh -c 'echo x > /app/written; exit 7' >/dev/null 2>&1; rc=$?
t_eq "exit status passed through" "$rc" 7
t_ok "writes are thrown away" "$MKIMG" run hello test ! -e /app/written
t_eq "no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
"$MKIMG" run nosuch >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown image exits 1" "$rc" 1
t_eq "unknown image message" "$(cat "$T/err")" 'mkimg: nosuch: image not known'
t_done
