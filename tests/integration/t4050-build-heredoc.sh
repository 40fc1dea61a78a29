#!/usr/bin/env bash
# Heredocs: RUN <<EOF as the script, heredocs fed to a command, COPY <<EOF sources
# (expanded unless the delimiter is quoted, <<- strips leading tabs).
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
mkdir -p "$T/c"
cat >"$T/c/Dockerfile" <<'DF'
FROM busybox
ENV NAME=world
COPY <<EOF /greet.txt
hello $NAME
EOF
COPY <<A <<-"B" /d/
x $NAME
A
	y $NAME
	B
RUN <<EOF
echo from heredoc > /ran
cat /greet.txt >> /ran
EOF
RUN cat <<EOF > /catted
line $NAME
EOF
DF
t_ok "build with heredocs" "$MKIMG" build -t hd "$T/c"
umoci unpack --image "$MKIMG_ROOT:hd:latest" "$T/u" >/dev/null 2>&1
r=$T/u/rootfs
t_eq "COPY heredoc expanded" "$(cat "$r/greet.txt")" "hello world"
t_eq "COPY heredoc mode" "$(stat -c %a "$r/greet.txt")" 644
t_eq "two heredocs into a directory, first expanded" "$(cat "$r/d/A")" "x world"
t_eq "quoted delimiter not expanded, <<- strips tabs" "$(cat "$r/d/B")" 'y $NAME'
t_eq "RUN <<EOF runs the body" "$(cat "$r/ran")" "$(printf 'from heredoc\nhello world')"
t_eq "heredoc as a command's input" "$(cat "$r/catted")" "line world"
"$MKIMG" build -t hd "$T/c" >"$T/out" 2>&1
t_eq "heredoc steps are cached" "$(grep -c '=> CACHED' "$T/out")" 4
sed -i 's/^x \$NAME$/x changed/' "$T/c/Dockerfile"
"$MKIMG" build -t hd "$T/c" >"$T/out" 2>&1
t_eq "a changed heredoc body misses the cache from there on" "$(grep -c '=> CACHED' "$T/out")" 1
t_done
