#!/usr/bin/env bash
# buildah-bud cases: build-arg, arg-scope, env, dupe-arg-env-name, copy-envvar, run-scenarios.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox docker.io/ubuntu

# ---- build-arg
c=$BUD/build-arg
t_ok "build-arg: --build-arg foo=bar" bud_build --no-cache -t ba --build-arg foo=bar "$c"
t_grep "build-arg: value printed" '^bar$' "$T/out"
t_ok "build-arg: --build-arg foo (from the environment)" env foo=fromenv "$MKIMG" build \
    --progress=plain --no-cache -t ba --build-arg foo "$c"
foo=fromenv bud_build --no-cache -t ba --build-arg foo "$c"
t_grep "build-arg: environment value printed" '^fromenv$' "$T/out"
t_ok "build-arg: unused build arg" bud_build --no-cache -t ba --build-arg foo=bar --build-arg foo2=bar2 "$c"
t_grep "build-arg: not consumed warning" 'one or more build args were not consumed: \[?foo2\]?' "$T/out"
t_ok "build-arg: Dockerfile2 (ARG IMAGE before FROM)" bud_build -t ba2 --build-arg IMAGE=alpine -f "$c/Dockerfile2" "$c"
t_ok "build-arg: IMAGE counts as consumed" bash -c "! grep -q 'not consumed' '$T/out'"
t_ok "build-arg: Dockerfile3" bud_build -t ba3 --build-arg UID=1 --build-arg CODE=c -f "$c/Dockerfile3" "$c"
t_ok "build-arg: Dockerfile3, flags in another order" bud_build -t ba3 --build-arg CODE=c --build-arg UID=1 -f "$c/Dockerfile3" "$c"
t_eq "build-arg: flag order does not affect the cache" "$(grep -c '=> CACHED' "$T/out")" 2
t_ok "build-arg: Dockerfile3, changed value" bud_build -t ba3 --build-arg CODE=d --build-arg UID=1 -f "$c/Dockerfile3" "$c"
t_eq "build-arg: changed value re-runs the steps after the ARG" "$(grep -c '=> CACHED' "$T/out")" 1
t_ok "build-arg: Dockerfile4 TEST=1" bud_build -t ba4 --build-arg TEST=1 -f "$c/Dockerfile4" "$c"
t_ok "build-arg: Dockerfile4 TEST=2" bud_build -t ba4b --build-arg TEST=2 -f "$c/Dockerfile4" "$c"
t_eq "build-arg: Dockerfile4: changed value reaches ENV" "$(bud_cfg ba4b:latest '.config.Env|map(select(startswith("NAME=")))')" '["NAME=2"]'

# ---- arg-scope
c=$BUD/arg-scope
while read -r file args path want; do
    ba=()
    [ "$args" = - ] || for a in ${args//,/ }; do ba+=(--build-arg "$a"); done
    t_ok "arg-scope: $file $args" bud_build -t as "${ba[@]}" -f "$c/Containerfile.$file" "$c"
    bud_unpack as:latest
    t_eq "arg-scope: $file $args: $path" "$(sed "s/^ //" "$T/u/rootfs$path")" "$want"
done <<'TABLE'
from-arg - /base.txt alpine
from-arg BASE=busybox /base.txt busybox
stage-overrides-header - /foo.txt stage
copy-from-arg - /from.txt a
copy-from-arg SRC=b /from.txt b
stage-overrides-header-copy-from - /from.txt b
multiple-args-stage-overrides-one - /out.txt 9 1
multiple-args-stage-only - /out.txt 1 2
multiple-args-one-step - /out.txt 0 1
multiple-args-one-step bar=88 /out.txt 0 88
multiple-args-one-step foo=99,bar=88 /out.txt 99 88
arg-mixed-defaults - /out.txt  set
arg-mixed-defaults a=given /out.txt given set
TABLE

# ---- env
c=$BUD/env
t_ok "env: env-same-file" bud_build --no-cache -t env-from-image -f "$c/Dockerfile.env-same-file" "$c"
t_grep "env: legacy ENV form, quotes removed" '^:unique\.test\.string:$' "$T/out"
t_ok "env: env-from-image" bud_build --no-cache -t efi -f "$c/Dockerfile.env-from-image" "$c"
t_grep "env: ENV inherited through the image config" '^@unique\.test\.string@$' "$T/out"
t_ok "env: special-chars" bud_build -t esc -f "$c/Dockerfile.special-chars" "$c"
t_eq "env: \$( kept literally" "$(bud_cfg esc:latest '.config.Env|map(select(startswith("LIB=")))')" '["LIB=$(PREFIX)/lib"]'
t_ok "env: check-env" bud_build -t ece -f "$c/Dockerfile.check-env" "$c"
t_eq "env: base env first, then foo=bar" "$(bud_cfg ece:latest '.config.Env')" '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","foo=bar"]'

# ---- dupe-arg-env-name
t_ok "dupe-arg-env-name" bud_build --no-cache -t dae "$BUD/dupe-arg-env-name"
t_grep "dupe-arg-env-name: ENV refers to the ARG of the same name" '^https://example\.org/bar$' "$T/out"

# ---- copy-envvar
t_ok "copy-envvar" bud_build -t cev "$BUD/copy-envvar"
bud_unpack cev:latest
t_ok "copy-envvar: source expanded" test -e "$T/u/rootfs/file-0.0.1.txt"

# ---- run-scenarios
c=$BUD/run-scenarios
for f in cmd-run entrypoint-run entrypoint-cmd-run; do
    t_ok "run-scenarios: $f" bud_build --no-cache -t rs -f "$c/Dockerfile.$f" "$c"
    t_grep "run-scenarios: $f: RUN unaffected" '^unique\.test\.string$' "$T/out"
done
for f in cmd-empty-run entrypoint-empty-run entrypoint-cmd-empty-run; do
    t_fails "run-scenarios: $f: a bare RUN fails" bud_build --no-cache -t rs -f "$c/Dockerfile.$f" "$c"
done
t_ok "run-scenarios: args" bud_build --no-cache -t rs -f "$c/Dockerfile.args" "$c"
t_grep "run-scenarios: args: quotes removed" '^arg_value$' "$T/out"
t_ok "run-scenarios: multi-args" bud_build --no-cache -t rs --build-arg USED_ARG=plugin1,plugin2,plugin3 \
    --build-arg UNUSED_ARG=x -f "$c/Dockerfile.multi-args" "$c"
t_grep "run-scenarios: multi-args: value verbatim" '^plugin1,plugin2,plugin3$' "$T/out"
t_grep "run-scenarios: multi-args: unused warned" 'not consumed: \[?UNUSED_ARG\]?' "$T/out"
t_ok "run-scenarios: multi-args: used in a non-final stage counts" bash -c "! grep -q 'not consumed.*USED_ARG\b' '$T/out' || grep -q 'not consumed: \[\?UNUSED_ARG\]\?$' '$T/out'"
t_ok "run-scenarios: noop-flags" bud_build -t rs -f "$c/Dockerfile.noop-flags" "$c"
t_done
