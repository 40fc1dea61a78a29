#!/usr/bin/env bash
# One option table per command (cli/options.h): parsing, --help, the man pages and the shell
# completions all come from it; global --log-level/--debug; make install puts everything in
# place.
. "$(dirname "$0")/../lib/test-lib.sh"

commands=$("$MKIMG" --help | sed -n '/^commands:/,/^$/p' | awk 'NF && !/^commands:/ {print $1}')
t_ok "mkimg --help lists commands" test -n "$commands"
t_grep "version is in mkimg --help" '^  version ' <("$MKIMG" --help)
t_eq "mkimg version" "$("$MKIMG" version)" "$("$MKIMG" --version)"
t_eq "mkimg help build is mkimg build --help" "$("$MKIMG" help build)" "$("$MKIMG" build --help)"
t_grep "build --help lists its options with their help" \
    '^  -t, --tag NAME\[:TAG\] +name the image \(repeatable\)$' <("$MKIMG" build --help)
t_grep "... and the registry options" '^      --tls-verify\[=BOOL\] +verify TLS' <("$MKIMG" build --help)

# Options after the operand, and the usage errors the table gives.
"$MKIMG" build --bogus . >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown option" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: unknown option "--bogus" (see "mkimg build --help")'
"$MKIMG" build . -t >/dev/null 2>"$T/err"; rc=$?
t_eq "missing value" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: --tag needs a value (NAME[:TAG]) (see "mkimg build --help")'
"$MKIMG" images -z >/dev/null 2>"$T/err"; rc=$?
t_eq "unknown short option" "$rc:$(cat "$T/err")" \
    '2:mkimg: images: unknown option "-z" (see "mkimg images --help")'
"$MKIMG" history >/dev/null 2>"$T/err"; rc=$?
t_eq "operand missing" "$rc:$(cat "$T/err")" \
    '2:mkimg: history: expected one IMAGE (see "mkimg history --help")'

# The man pages: generated from the tables, one per command, every option of `CMD --help` in
# its page, rendered by man without a warning.
"$MKIMG" __generate man "$T/man" 2>"$T/err"
t_eq "__generate man" "$?:$(cat "$T/err")" "0:"
t_ok "mkimg(1)" test -s "$T/man/mkimg.1"
missing= warned= checked=0
for c in $commands; do
    page=$T/man/mkimg-$c.1
    [ -s "$page" ] || { missing+=" mkimg-$c.1"; continue; }
    text=$(MANWIDTH=80 man -l --warnings "$page" 2>"$T/warn")
    [ -s "$T/warn" ] && warned+=" $c:$(head -1 "$T/warn")"
    for o in $("$MKIMG" "$c" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z-]*' | grep -oE -- '--[a-z-]+'); do
        checked=$((checked + 1))
        grep -q -e "$o\b" <<<"$text" || missing+=" $c:$o"
    done
done
t_eq "every option of every command is in its man page" "$missing" ""
t_ok "... and that was checked for many options" test "$checked" -gt 60
t_eq "man renders every page without warnings" "$warned" ""
t_grep "mkimg(1) names every command page" 'mkimg-history\(1\)' \
    <(MANWIDTH=80 man -l "$T/man/mkimg.1" 2>/dev/null)
t_ok "groff -wall is quiet too" bash -c '! groff -wall -man -Tutf8 "$1"/*.1 2>&1 >/dev/null | grep .' \
    _ "$T/man"

# bash completion, from the same tables.
"$MKIMG" __generate bash >"$T/mkimg.bash"
t_ok "bash completion parses" bash -n "$T/mkimg.bash"
mkdir -p "$T/bin" && ln -s "$MKIMG" "$T/bin/mkimg" # the completion runs "mkimg images"
complete_words() { # WORDS... : COMPREPLY for the last word
    PATH=$T/bin:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
        COMPREPLY=(); _mkimg; printf "%s\n" "${COMPREPLY[@]}"' _ "$T/mkimg.bash" "$@"
}
t_grep "mkimg build --ta: --tag" '^--tag$' <(complete_words mkimg build --ta)
t_eq "mkimg bu: build" "$(complete_words mkimg bu)" build
t_eq "--network values" "$(complete_words mkimg build --network '' | tr '\n' ' ')" \
    "default host none "
t_eq "--pull=al (bash splits at =)" "$(complete_words mkimg build --pull = al)" always
t_eq "global --log-level values" "$(complete_words mkimg --log-level w)" warn
t_ok "import busybox" t_import_busybox
t_eq "-t completes the store's names" "$(complete_words mkimg --root "$MKIMG_ROOT" build -t bu)" \
    busybox:latest
"$MKIMG" __generate zsh >"$T/_mkimg"
t_grep "zsh completion names build's --tag" "\{-t\+,--tag=\}" "$T/_mkimg"
if command -v zsh >/dev/null; then
    t_ok "zsh completion parses" zsh -n "$T/_mkimg"
else
    t_skip "zsh not installed"
fi

# --log-level and --debug.
"$MKIMG" --debug images -q >/dev/null 2>"$T/err"
t_grep "--debug prints debug lines" '^mkimg: debug: images exited with status 0' "$T/err"
"$MKIMG" images -q >/dev/null 2>"$T/err"
t_eq "no debug lines by default" "$(cat "$T/err")" ""
"$MKIMG" --log-level=debug images -q >/dev/null 2>"$T/err"
t_grep "--log-level=debug" '^mkimg: debug: ' "$T/err"
"$MKIMG" --root "$T/typo1" images -q >/dev/null 2>"$T/err"
t_grep "warnings by default" '^mkimg: warning: --root' "$T/err"
"$MKIMG" --log-level error --root "$T/typo2" images -q >/dev/null 2>"$T/err"
t_eq "--log-level=error drops warnings" "$(cat "$T/err")" ""
"$MKIMG" --log-level loud images >/dev/null 2>"$T/err"
t_eq "bad --log-level" "$?:$(cat "$T/err")" \
    '2:mkimg: unknown --log-level "loud" (debug, info, warn or error)'

# make install DESTDIR=... PREFIX=...: the binary, the pages and both completions.
if [ -z "${MKIMG_TEST_NO_MAKE:-}" ] && command -v make >/dev/null; then
    make -s -C "$MKIMG_TOP" install DESTDIR="$T/dest" PREFIX=/usr >"$T/make.log" 2>&1
    t_eq "make install" "$?" 0
    t_ok "binary" test -x "$T/dest/usr/bin/mkimg"
    t_ok "mkimg.1" test -s "$T/dest/usr/share/man/man1/mkimg.1"
    t_ok "mkimg-build.1" test -s "$T/dest/usr/share/man/man1/mkimg-build.1"
    t_ok "bash completion" test -s "$T/dest/usr/share/bash-completion/completions/mkimg"
    t_ok "zsh completion" test -s "$T/dest/usr/share/zsh/vendor-completions/_mkimg"
else
    t_skip "make install not tried"
fi
t_done
