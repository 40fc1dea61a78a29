#!/usr/bin/env bash
# Which Dockerfile a build reads, and the ignore file that goes with it: CONTEXT/Dockerfile,
# else CONTEXT/Containerfile (buildah, podman); -f names one. BuildKit's per-Dockerfile ignore
# file NAME.dockerignore beside the Dockerfile replaces .dockerignore, also when the
# Dockerfile was found as Containerfile, and also for a context given as a tar.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
listing() { # IMAGE: the files COPY . put under /ctx
    "$MKIMG" run "$1" ls /ctx | tr '\n' ' '
}

# Only a Containerfile and its ignore file.
c=$T/cf; mkdir -p "$c"
printf 'FROM busybox\nCOPY . /ctx/\n' >"$c/Containerfile"
printf 'secret\n' >"$c/Containerfile.dockerignore"
echo s >"$c/secret"; echo k >"$c/kept"
t_ok "a context with only a Containerfile builds" "$MKIMG" build -q -t cf "$c"
t_eq "Containerfile.dockerignore applies to it" "$(listing cf)" \
    "Containerfile Containerfile.dockerignore kept "

# The same context as a tar on stdin: the ignore file comes along with the Containerfile.
tar -C "$c" -cf "$T/cf.tar" .
t_ok "the same context as a tar on stdin builds" \
    bash -c '"$1" build -q -t cf-tar - <"$2"' _ "$MKIMG" "$T/cf.tar"
t_eq "Containerfile.dockerignore applies in the tar too" "$(listing cf-tar)" \
    "Containerfile Containerfile.dockerignore kept "

# A Dockerfile beside it wins, and with it the Dockerfile's own ignore file (none here:
# .dockerignore then).
printf 'FROM busybox\nCOPY . /ctx/\n' >"$c/Dockerfile"
printf 'kept\n' >"$c/.dockerignore"
t_ok "Dockerfile and Containerfile: Dockerfile is read" "$MKIMG" build -q -t df "$c"
t_eq "... with .dockerignore, not the Containerfile's ignore file" "$(listing df)" \
    "Containerfile Containerfile.dockerignore Dockerfile secret "

# -f CONTEXT/Containerfile picks its ignore file the same way.
t_ok "-f Containerfile" "$MKIMG" build -q -t cf-f -f "$c/Containerfile" "$c"
t_eq "-f Containerfile: Containerfile.dockerignore applies" "$(listing cf-f)" \
    "Containerfile Containerfile.dockerignore Dockerfile kept "

# Neither file: one line naming the Dockerfile looked for.
e=$T/empty; mkdir -p "$e"
"$MKIMG" build -q "$e" >/dev/null 2>"$T/err"; rc=$?
t_eq "no Dockerfile: exit 1" "$rc" 1
t_grep "no Dockerfile: one line naming it" "^mkimg: $e/Dockerfile: " "$T/err"
t_eq "no Dockerfile: only that line" "$(wc -l <"$T/err")" 1
t_done
