# tests/lib/remote-cache.sh - the multi-stage context the remote cache tests build (sourced
# after test-lib.sh): each RUN prints "RAN-<name>" (its instruction line shows m=RAN;
# "$m-...", never the word), so the build log tells which RUNs ran.
#   rc_store NAME     a fresh store $T/store-NAME holding busybox (exported MKIMG_ROOT)
#   rc_build LOG ARGS builds $c with ARGS: the image ID on stdout, the log in LOG
#   rc_ran LOG        the RUNs that ran, sorted: "RAN-build1 RAN-final2"
#   rc_registry NAME  reg_start with htpasswd auth (ci / ci-pw), no credentials around
export SOURCE_DATE_EPOCH=1700000000
c=$T/c
mkdir -p "$c"
echo a >"$c/a.txt"
echo late >"$c/late.txt"
cat >"$c/Dockerfile" <<'DF'
FROM busybox AS build
RUN m=RAN; echo "$m-build1"; echo one >/one
COPY a.txt /a.txt
RUN m=RAN; echo "$m-build2"; cat /a.txt /one >/two
FROM busybox
COPY --from=build /two /two
WORKDIR /app
RUN m=RAN; echo "$m-final1"; echo final >/f
COPY late.txt /late.txt
RUN m=RAN; echo "$m-final2"; cat /late.txt >/late2
DF
rc_store() {
    export MKIMG_ROOT=$T/store-$1
    t_import_busybox
}
rc_build() {
    local log=$1
    shift
    "$MKIMG" build --progress=plain "$@" "$c" 2>"$log"
}
rc_ran() { grep -o 'RAN-[a-z0-9]*' "$1" | sort | paste -sd ' ' -; }
rc_registry() {
    unset REGISTRY_AUTH_FILE
    export XDG_RUNTIME_DIR=$T/run HOME=$T/home
    mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
    reg_htpasswd "$T/htpasswd" ci ci-pw
    printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$T/htpasswd" >"$T/auth.yml"
    reg_start "$1" "$T/auth.yml"
}
