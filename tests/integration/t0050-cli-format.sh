#!/usr/bin/env bash
# Machine-readable output as docker's: images --format (json, Go templates, table), --filter,
# inspect --format, history; and exports that name only what the build was asked to name.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox" t_import_busybox
c=$T/ctx; mkdir -p "$c"
printf 'FROM busybox\nLABEL team=a x.y=z\nENV FOO=bar\nRUN echo hi >/f\n' >"$c/Dockerfile"
old=$("$MKIMG" build -q --timestamp 1000000000 -t app:1 "$c")
t_ok "build app:1 (created 2001)" test -n "$old"
printf 'FROM busybox\nLABEL team=b\n' >"$c/Dockerfile.b"
new=$("$MKIMG" build -q --timestamp 1500000000 -f "$c/Dockerfile.b" -t app:2 "$c")
t_ok "build app:2 (created 2017)" test -n "$new"
"$MKIMG" tag app:1 other/app:1
hex() { echo "${1#sha256:}" | cut -c1-12; }

# --format json: one object a line, with docker's fields.
"$MKIMG" images --format json >"$T/json"
t_eq "one JSON line per row" "$(wc -l <"$T/json")" 4
t_eq "json fields" "$(jq -r 'select(.Repository == "app" and .Tag == "1") | .ID' "$T/json")" \
    "$(hex "$old")"
t_eq "docker's keys" "$(head -1 "$T/json" | jq -c 'keys')" \
    '["Containers","CreatedAt","CreatedSince","Digest","ID","Platform","Repository","SharedSize","Size","Tag","UniqueSize","VirtualSize"]'

# Templates.
t_eq "{{.ID}} {{.Repository}}:{{.Tag}}" \
    "$("$MKIMG" images --format '{{.ID}} {{.Repository}}:{{.Tag}}' | grep ' app:1$')" \
    "$(hex "$old") app:1"
"$MKIMG" images --no-trunc --format '{{.ID}}\t{{.Repository}}' >"$T/tab"
t_grep "\\t is a tab, columns aligned (docker pads by 3)" "^$old   app\$" "$T/tab"
"$MKIMG" images --format 'table {{.Repository}}\t{{.Tag}}' >"$T/table"
t_eq "table: a header row" "$(head -1 "$T/table")" "REPOSITORY   TAG"
t_eq "table: then the rows" "$(grep -c . "$T/table")" 5
"$MKIMG" images --format '{{.Nope}}' >/dev/null 2>"$T/err"
t_eq "an unknown field is an error" "$?:$(cat "$T/err")" \
    '2:mkimg: images --format: template: {{.Nope}}: no field "Nope"'
"$MKIMG" images --format '{{.ID' >/dev/null 2>"$T/err"
t_eq "an unclosed action is an error" "$?" 2

# --filter.
list() { "$MKIMG" images --format '{{.Repository}}:{{.Tag}}' "$@" | sort | tr '\n' ' '; }
t_eq "reference=app" "$(list --filter reference=app)" "app:1 app:2 "
t_eq "reference=app:1 or busybox" "$(list --filter reference=app:1 --filter reference='busy*')" \
    "app:1 busybox:latest "
t_eq "reference glob over a path" "$(list --filter 'reference=*/app')" "other/app:1 "
t_eq "label=team" "$(list --filter label=team)" "app:1 app:2 other/app:1 "
t_eq "label=team=b" "$(list --filter label=team=b)" "app:2 "
t_eq "label and reference both apply" "$(list --filter label=team=a --filter reference=other/*)" \
    "other/app:1 "
t_eq "before=app:2" "$(list --filter before=app:2)" "app:1 other/app:1 "
t_eq "since=app:1" "$(list --filter since=app:1)" "app:2 busybox:latest "
t_eq "dangling=true: none" "$(list --filter dangling=true)" ""
t_eq "dangling=false: all" "$(list --filter dangling=false)" \
    "app:1 app:2 busybox:latest other/app:1 "
"$MKIMG" images --filter color=red >/dev/null 2>"$T/err"
t_eq "unknown filter" "$?:$(cat "$T/err")" \
    '2:mkimg: images: unknown --filter "color" (reference, dangling, label, before or since)'
"$MKIMG" images --filter before=nosuch >/dev/null 2>"$T/err"
t_eq "before= an unknown image" "$?:$(cat "$T/err")" '1:mkimg: nosuch: image not known'

# inspect --format over the inspect document.
t_eq "{{.Config.Env}}" "$("$MKIMG" inspect --format '{{.Config.Env}}' app:1)" \
    "[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin FOO=bar]"
t_eq "{{json .Config}} is the document's Config" \
    "$("$MKIMG" inspect --format '{{json .Config}}' app:1 | jq -cS .)" \
    "$("$MKIMG" inspect app:1 | jq -cS '.[0].Config')"
t_eq '{{index .Config.Labels "x.y"}}' \
    "$("$MKIMG" inspect --format '{{index .Config.Labels "x.y"}}' app:1)" z
t_eq "{{.Config.Labels.team}} and several images" \
    "$("$MKIMG" inspect -f '{{.Config.Labels.team}}' app:1 app:2 | tr '\n' ' ')" "a b "
t_eq "{{.Id}}" "$("$MKIMG" inspect --format '{{.Id}}' app:1)" "$old"
t_eq "a map prints as Go's map[k:v], keys sorted" \
    "$("$MKIMG" inspect --format '{{.Config.Labels}}' app:1)" "map[team:a x.y:z]"
t_eq "{{range}} over a list, \\n a newline" \
    "$("$MKIMG" inspect --format '{{range .Config.Env}}<{{.}}>\n{{end}}' app:1 | grep -c '^<.*>$')" 2
t_eq "{{if}}{{else}}{{end}}, {{- -}} trims" \
    "$("$MKIMG" inspect --format '{{if .Config.Labels}}yes{{else}}no{{end}} {{- range .RepoTags -}} ,{{.}} {{- end}}' app:1 busybox)" \
    "yes,app:1,other/app:1
no,busybox:latest"
"$MKIMG" inspect --format '{{range .RepoTags}}x' app:1 >/dev/null 2>"$T/err"
t_eq "{{range}} without {{end}}" "$?:$(cat "$T/err")" "2:mkimg: inspect --format: template: missing {{end}}"

# history.
"$MKIMG" history app:1 >"$T/hist"
t_grep "history header" '^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$' "$T/hist"
t_grep "the newest row has the image ID" "^$(hex "$old") .*RUN /bin/sh -c echo hi >/f" "$T/hist"
t_eq "one row per history entry" "$(($(wc -l <"$T/hist") - 1))" \
    "$("$MKIMG" inspect app:1 | jq '.[0].History | length')"
t_eq "-q" "$("$MKIMG" history -q app:1 | head -2 | tr '\n' ' ')" "$(hex "$old") <missing> "
t_eq "--no-trunc" "$("$MKIMG" history -q --no-trunc app:1 | head -1)" "$old"
t_eq "--format" "$("$MKIMG" history --format '{{.CreatedBy}}|{{.Comment}}' app:1 | head -1)" \
    "RUN /bin/sh -c echo hi >/f # buildkit|buildkit.dockerfile.v0"
t_eq "a RUN's layer has a size, a LABEL's none" \
    "$("$MKIMG" history --format '{{.Size}}' app:1 | head -3 | tr '\n' ' ' | sed 's/[0-9.]* kB/N kB/')" \
    "N kB 0 B 0 B "

# Exports name what was asked: with other tags on the image, an archive without -t or name=
# has no name, and skopeo reads it.
"$MKIMG" build -q -t app:1 -o "type=oci,dest=$T/x.tar" "$c" >/dev/null
t_ok "-t: skopeo inspect oci-archive" skopeo inspect "oci-archive:$T/x.tar"
t_ok "another name on the image" "$MKIMG" tag app:1 team-a/app:1
t_eq "the next build gives that image (cached)" \
    "$("$MKIMG" build -q -o "type=oci,dest=$T/y.tar" "$c")" \
    "$("$MKIMG" inspect --format '{{.Id}}' team-a/app:1)"
t_ok "no -t: skopeo inspect oci-archive" skopeo inspect "oci-archive:$T/y.tar"
t_eq "no -t: the index names nothing" \
    "$(tar -xOf "$T/y.tar" index.json | jq -c '[.manifests[].annotations]')" '[null]'
"$MKIMG" build -q -o "type=docker,dest=$T/d.tar" "$c" >/dev/null
t_eq "no -t: docker-archive RepoTags empty" \
    "$(tar -xOf "$T/d.tar" manifest.json | jq -c '[.[].RepoTags | length]')" '[0]'
t_ok "skopeo inspect docker-archive" skopeo inspect "docker-archive:$T/d.tar"
"$MKIMG" build -q -t only:1 -o "type=docker,dest=$T/e.tar" "$c" >/dev/null
t_eq "-t: docker-archive RepoTags hold only the -t names" \
    "$(tar -xOf "$T/e.tar" manifest.json | jq -c '[.[].RepoTags]')" '[["only:1"]]'
t_done
