#!/usr/bin/env bash
# ADD <git URL> as BuildKit does it: a shallow checkout of #ref[:subdir] with the git program
# (the code that fetches git build contexts), without .git unless --keep-git-dir=true; the
# step's cache key is the resolved commit (a moved branch misses, an unchanged one hits);
# --checksum on a git source is the commit it must be. ADD --checksum=sha256:... verifies a
# download and names the Dockerfile line, the expected and the actual digest on a mismatch.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/http.sh"
. "$MKIMG_TOP/tests/lib/registry.sh" # reg_tls_certs, reg_free_port

command -v git >/dev/null || { echo "ok 1 - # SKIP git not installed"; echo 1..1; exit 0; }
t_ok "import busybox base" t_import_busybox

# A repository: sub/f and top, tag v1 on the first commit, main one later.
w=$T/work; mkdir -p "$w"
echo top >"$w/top"
git_test_repo "$w" "$T/repos/repo.git"
first=$GIT_FIRST
t_ok "start the git HTTP server" git_http_start "$T/repos"
U=http://$GIT_HTTP/repo.git

c=$T/ctx; mkdir -p "$c"
cat >"$c/Dockerfile" <<DF
FROM busybox
ADD $U#main:sub /from-sub
ADD $U#v1 /whole
ADD --keep-git-dir=true $U#v1 /kept
DF
t_ok "ADD git URLs builds" "$MKIMG" build -q -t ag "$c"
t_eq "#main:sub gave the branch's subdirectory" "$("$MKIMG" run ag cat /from-sub/f)" two
t_eq "#v1 gave the tag's whole tree" "$("$MKIMG" run ag cat /whole/sub/f /whole/top | tr '\n' ' ')" "one top "
t_ok "without --keep-git-dir there is no .git" "$MKIMG" run ag test ! -e /whole/.git -a ! -e /from-sub/.git
t_ok "--keep-git-dir=true keeps .git" "$MKIMG" run ag test -d /kept/.git
t_eq "the kept .git is at the tag's commit" \
    "$("$MKIMG" run ag cat /kept/.git/HEAD)" "$first"

# The cache: the same commits hit; a commit on main misses the step that uses main only.
"$MKIMG" build --progress=plain -t ag "$c" >/dev/null 2>"$T/log"
t_eq "a rebuild with the same commits is all cached" "$(grep -c '=> CACHED' "$T/log")" 3
echo three >"$w/sub/f"
git_work commit -qam three && git_work push -q "$T/repos/repo.git" main
"$MKIMG" build --progress=plain -t ag "$c" >/dev/null 2>"$T/log"; rc=$?
t_eq "a moved branch misses the cache (the steps after it too)" "$rc:$(grep -c '=> CACHED' "$T/log")" 0:0
t_eq "and gives its new commit" "$("$MKIMG" run ag cat /from-sub/f)" three

# https, its CA trusted through SSL_CERT_FILE (which git gets too).
reg_tls_certs
git_http_start "$T/repos" "$T/srv.crt" "$T/srv.key"
printf 'FROM busybox\nADD https://%s/repo.git#v1:sub /s\n' "$GIT_HTTP" >"$c/Dockerfile.https"
t_ok "ADD https://127.0.0.1:PORT/repo.git#v1:sub" env -u GIT_SSL_CAINFO \
    SSL_CERT_FILE="$T/certs/ca.crt" "$MKIMG" build -q -t ags -f "$c/Dockerfile.https" "$c"
t_eq "gave the tag's subdirectory" "$("$MKIMG" run ags cat /s/f)" one

# git@ / ssh-style URLs go to git too (here a missing host: git's reason, named).
printf 'FROM busybox\nADD git@127.0.0.1:nope/repo.git /x\n' >"$c/Dockerfile.ssh"
GIT_SSH_COMMAND=false "$MKIMG" build -q -f "$c/Dockerfile.ssh" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "ADD git@... fails when the repository cannot be reached" "$rc" 1
t_grep "naming the line and the repository" \
    '^mkimg: .*Dockerfile.ssh:2: fetching git repository "git@127.0.0.1:nope/repo.git": git fetch failed' "$T/err"
printf 'FROM busybox\nADD %s#nobranch /x\n' "$U" >"$c/Dockerfile.nb"
"$MKIMG" build -q -f "$c/Dockerfile.nb" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a missing ref fails" "$rc" 1
t_eq "with git's reason" "$(cat "$T/err")" \
    "mkimg: $c/Dockerfile.nb:2: fetching git repository \"$U\": git fetch failed: fatal: couldn't find remote ref nobranch"

# --checksum on a git source: the commit.
printf 'FROM busybox\nADD --checksum=%s %s#v1 /x\n' "$first" "$U" >"$c/Dockerfile.gc"
t_ok "ADD --checksum=COMMIT of the tag's commit builds" "$MKIMG" build -q -t agc -f "$c/Dockerfile.gc" "$c"
t_eq "its content" "$("$MKIMG" run agc cat /x/top)" top
bad=0123456789abcdef0123456789abcdef01234567
printf 'FROM busybox\nADD --checksum=%s %s#v1 /x\n' "$bad" "$U" >"$c/Dockerfile.gb"
"$MKIMG" build -q -f "$c/Dockerfile.gb" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "another commit fails" "$rc" 1
t_eq "naming the line, the commit got and the one wanted" "$(cat "$T/err")" \
    "mkimg: $c/Dockerfile.gb:2: fetching \"$U#v1\": checksum mismatch: got $first, want $bad"

# --checksum on an http download.
srv=$T/srv; mkdir -p "$srv"; echo payload >"$srv/file.txt"
sum=$(sha256sum "$srv/file.txt" | cut -d' ' -f1)
t_ok "start the HTTP server" http_start "$srv"
printf 'FROM busybox\nADD --checksum=sha256:%s http://%s/file.txt /f\n' "$sum" "$HTTP" >"$c/Dockerfile.hc"
t_ok "ADD --checksum=sha256:RIGHT builds" "$MKIMG" build -q -t ahc -f "$c/Dockerfile.hc" "$c"
t_eq "the file" "$("$MKIMG" run ahc cat /f)" payload
wrong=sha256:$(printf x | sha256sum | cut -d' ' -f1)
printf 'FROM busybox\nRUN true\nADD --checksum=%s http://%s/file.txt /f\n' "$wrong" "$HTTP" >"$c/Dockerfile.hw"
"$MKIMG" build -q -f "$c/Dockerfile.hw" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "a wrong checksum fails" "$rc" 1
t_eq "naming the line, the URL, the actual and the expected digest" "$(cat "$T/err")" \
    "mkimg: $c/Dockerfile.hw:3: downloading \"http://$HTTP/file.txt\": checksum mismatch: got sha256:$sum, want $wrong"
printf 'FROM busybox\nADD --checksum=sha256:%s Dockerfile /f\n' "$sum" >"$c/Dockerfile.hl"
"$MKIMG" build -q -f "$c/Dockerfile.hl" "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "--checksum with a local source fails" "$rc" 1
t_eq "as BuildKit says it" "$(cat "$T/err")" \
    "mkimg: $c/Dockerfile.hl:2: checksum requires HTTP(S) or Git sources"
t_eq "no temp dir left in the store" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
