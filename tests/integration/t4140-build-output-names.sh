#!/usr/bin/env bash
# build --output as buildx takes it: an archive names exactly what was asked (-t or name=), not
# every tag that points at the same image, so skopeo reads it; "-o -" and dest=- stream the tar
# alone to stdout; type=image tags, type=registry (and type=image,push=true) pushes.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/registry.sh"

cd "$T" || exit 1 # -o - used to make a directory "-" here
t_ok "import busybox base" t_import_busybox
c=$T/ctx; o=$T/out; mkdir -p "$c" "$o"
printf 'FROM busybox\nCOPY a /a\n' >"$c/Dockerfile"
echo payload >"$c/a"
t_ok "another tag points at the image" "$MKIMG" build -q -t team-a/app:1 "$c"

t_ok "-o type=oci,dest=x.tar" "$MKIMG" build -q -t c:1 -o "type=oci,dest=$o/x.tar" "$c"
t_ok "skopeo inspect oci-archive reads it" skopeo inspect "oci-archive:$o/x.tar"
tar -xOf "$o/x.tar" index.json >"$T/index.json"
t_eq "the index has one image, named as asked" \
    "$(jq -c '[.manifests[].annotations["io.containerd.image.name"]]' "$T/index.json")" \
    '["c:1"]'
t_ok "-o type=docker with two -t" \
    "$MKIMG" build -q -t c:1 -t c:2 -o "type=docker,dest=$o/d.tar" "$c"
t_eq "one entry with exactly the two names" \
    "$(tar -xOf "$o/d.tar" manifest.json | jq -c '[.[].RepoTags]')" '[["c:1","c:2"]]'
t_ok "skopeo inspect docker-archive reads it" skopeo inspect "docker-archive:$o/d.tar"
t_ok "name= instead of -t" "$MKIMG" build -q -t c:1 -o "type=oci,dest=$o/n.tar,name=other/x:5" "$c"
t_eq "the index names name=" \
    "$(tar -xOf "$o/n.tar" index.json | jq -c '[.manifests[].annotations["io.containerd.image.name"]]')" \
    '["other/x:5"]'
t_fails "and name= was not left behind as a tag" "$MKIMG" inspect other/x:5

"$MKIMG" build -q -o - "$c" >"$o/stdout.tar" 2>"$T/err"
t_eq "-o - succeeds" "$?" 0
t_grep "-o - is a rootfs tar on stdout" '^a$' <(tar -tf "$o/stdout.tar" 2>/dev/null)
t_ok "-o - piped into tar t" bash -c 'set -o pipefail; "$1" build -q -o - "$2" | tar -t | grep -x a' \
    _ "$MKIMG" "$c"
t_ok "no directory named -" test ! -e "$T/-" -a ! -e "$c/-"
"$MKIMG" build -q -o type=tar,dest=- "$c" >"$o/dash.tar"
t_ok "type=tar,dest=-" "$MKIMG" build -q -o "type=tar,dest=$o/file.tar" "$c"
t_ok "stdout holds the tar and nothing after it" cmp "$o/dash.tar" "$o/file.tar"
"$MKIMG" build -q -t c:1 -o type=oci,dest=- "$c" >"$o/oci-stdout.tar"
t_ok "type=oci,dest=- is an OCI archive on stdout" skopeo inspect "oci-archive:$o/oci-stdout.tar"
"$MKIMG" build -q -o - -o type=oci,dest=- "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "two outputs on stdout: usage error" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: only one --output can go to stdout'

t_ok "type=image,name= tags locally" "$MKIMG" build -q -o type=image,name=local/img:7 "$c"
t_ok "the name exists" "$MKIMG" inspect local/img:7

if reg_start; then
    t_ok "type=registry,name= pushes" "$MKIMG" build -q -o "type=registry,name=$REG/out/reg:1" "$c"
    t_ok "the registry has it" skopeo inspect --tls-verify=false "docker://$REG/out/reg:1"
    t_ok "type=image,push=true with -t pushes" \
        "$MKIMG" build -q -t "$REG/out/img:2" -o type=image,push=true "$c"
    t_ok "the registry has that too" skopeo inspect --tls-verify=false "docker://$REG/out/img:2"
else
    t_skip "docker-registry not available"
fi
"$MKIMG" build -q -o type=registry "$c" >/dev/null 2>"$T/err"; rc=$?
t_eq "type=registry without a name" "$rc:$(cat "$T/err")" \
    '2:mkimg: build: --output type=image needs name= or -t'
t_done
