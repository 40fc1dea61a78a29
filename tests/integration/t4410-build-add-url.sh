#!/usr/bin/env bash
# ADD <http(s) URL>: file naming under a directory or as the destination, mode 0600, mtime
# from Last-Modified, --chown/--chmod, never unpacked unless --unpack=true, --checksum, the
# cache key (the content, downloaded on every build; with --checksum a cache hit downloads
# nothing), one-line errors (404, connection refused, TLS, checksum, git), proxy variables.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"

t_ok "import busybox base" t_import_busybox
srv=$T/srv; c=$T/ctx; mkdir -p "$srv/dir" "$c" "$T/tarsrc"
echo hello >"$srv/a.txt"
touch -d '2001-02-03 04:05:06 UTC' "$srv/a.txt"
echo "two words" >"$srv/dir/b c.txt"
echo inside >"$T/tarsrc/member"
tar -C "$T/tarsrc" -czf "$srv/arch.tar.gz" member
t_ok "start the HTTP server" http_start "$srv"
U=http://$HTTP
sum=$(sha256sum "$srv/a.txt" | cut -d' ' -f1)

cat >"$c/Dockerfile" <<DF
FROM busybox
ADD $U/a.txt /dl/
ADD $U/a.txt /named
ADD $U/dir/b%20c.txt /dl/
ADD --chown=12:34 --chmod=0644 $U/a.txt /owned
ADD $U/arch.tar.gz /arch/
ADD --unpack=true $U/arch.tar.gz /unpacked/
ADD --checksum=sha256:$sum $U/a.txt /checked
ADD $U/ /root-url/
DF
t_ok "build with URL sources" "$MKIMG" build -t url "$c"
umoci unpack --image "$MKIMG_ROOT:url:latest" "$T/u" >/dev/null 2>&1
r=$T/u/rootfs
t_eq "dest ending in / takes the URL's file name" "$(cat "$r/dl/a.txt")" hello
t_eq "dest without / is the file" "$(cat "$r/named")" hello
t_eq "the name is the decoded last path component" "$(cat "$r/dl/b c.txt")" "two words"
t_eq "mode 0600, owner 0:0" "$(stat -c '%a %u:%g' "$r/dl/a.txt" "$r/named" | sort -u)" "600 0:0"
t_eq "mtime from Last-Modified" "$(stat -c %Y "$r/dl/a.txt")" "$(stat -c %Y "$srv/a.txt")"
t_eq "--chown and --chmod" "$(stat -c '%a %u:%g' "$r/owned")" "644 12:34"
t_ok "a remote archive is not unpacked" cmp "$r/arch/arch.tar.gz" "$srv/arch.tar.gz"
t_eq "--unpack=true unpacks it" "$(cat "$r/unpacked/member")" inside
t_eq "--checksum that matches" "$(cat "$r/checked")" hello
t_ok "a URL without a path gives __unnamed__" test -s "$r/root-url/__unnamed__"

# Cache: without --checksum every build downloads and the content decides.
printf 'FROM busybox\nADD %s/a.txt /a\n' "$U" >"$c/Dockerfile"
t_ok "build one ADD" "$MKIMG" build -q -t c1 "$c"
n0=$(http_count /a.txt)
"$MKIMG" build -t c1 "$c" >"$T/out" 2>&1
t_grep "unchanged content is CACHED" 'CACHED' "$T/out"
t_eq "...after downloading it again" "$(http_count /a.txt)" $((n0 + 1))
echo changed >"$srv/a.txt"
"$MKIMG" build -t c1 "$c" >"$T/out" 2>&1
t_ok "changed content misses the cache" bash -c "! grep -q CACHED '$T/out'"
rm -rf "$T/u"; umoci unpack --image "$MKIMG_ROOT:c1:latest" "$T/u" >/dev/null 2>&1
t_eq "changed content lands" "$(cat "$T/u/rootfs/a")" changed
sum=$(sha256sum "$srv/a.txt" | cut -d' ' -f1)
printf 'FROM busybox\nADD --checksum=sha256:%s %s/a.txt /a\n' "$sum" "$U" >"$c/Dockerfile"
t_ok "build with --checksum" "$MKIMG" build -q -t c2 "$c"
n0=$(http_count /a.txt)
"$MKIMG" build -t c2 "$c" >"$T/out" 2>&1
t_grep "--checksum rebuild is CACHED" 'CACHED' "$T/out"
t_eq "--checksum cache hit downloads nothing" "$(http_count /a.txt)" "$n0"

# Errors: one line naming the URL, nothing tagged, nothing left in the store's tmp.
bad() { # NAME WANT-REGEX DOCKERFILE-LINE [ENV...]
    local name=$1 want=$2 line=$3
    shift 3
    printf 'FROM busybox\n%s\n' "$line" >"$c/Dockerfile"
    env "$@" "$MKIMG" build -q -t bad "$c" >/dev/null 2>"$T/err"
    t_eq "$name exits 1" "$?" 1
    t_grep "$name message" "$want" "$T/err"
    t_eq "$name: one line" "$(wc -l <"$T/err")" 1
}
zero=sha256:0000000000000000000000000000000000000000000000000000000000000000
bad "checksum mismatch" "^mkimg: Dockerfile:2: downloading \"$U/a.txt\": checksum mismatch: got sha256:$sum, want $zero\$" \
    "ADD --checksum=$zero $U/a.txt /a"
bad "404" "^mkimg: Dockerfile:2: downloading \"$U/missing\": the server answered HTTP 404\$" "ADD $U/missing /m"
bad "connection refused" '^mkimg: Dockerfile:2: downloading "http://127.0.0.1:1/x": .*(refused|connect)' \
    "ADD http://127.0.0.1:1/x /x"
bad "TLS to a plain HTTP server" "^mkimg: Dockerfile:2: downloading \"https://$HTTP/a.txt\": .*(SSL|TLS)" \
    "ADD https://$HTTP/a.txt /x"
bad "a dead proxy is used" '^mkimg: Dockerfile:2: downloading ".*": .*127\.0\.0\.1 port 1' \
    "ADD $U/a.txt /x" http_proxy=http://127.0.0.1:1 no_proxy= NO_PROXY=
bad "an unreachable git URL" '^mkimg: Dockerfile:2: fetching git repository "https://127.0.0.1:1/r.git": git fetch failed: ' \
    "ADD https://127.0.0.1:1/r.git /src"
bad "--checksum on a local file" '^mkimg: Dockerfile:2: checksum requires HTTP\(S\) or Git sources$' \
    "ADD --checksum=$zero Dockerfile /x"
bad "bad --checksum" '^mkimg: Dockerfile:2: invalid --checksum value "md5:1" \(want sha256:<64 hex digits>\)$' \
    "ADD --checksum=md5:1 $U/a.txt /x"
bad "COPY of a URL" "^mkimg: Dockerfile:2: COPY cannot take a URL" "COPY $U/a.txt /x"
t_fails "nothing tagged after the failures" "$MKIMG" inspect bad
t_ok "no temp dir left" bash -c "[ -z \"\$(ls -A '$MKIMG_ROOT/tmp')\" ]"
t_done
