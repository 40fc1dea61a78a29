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
