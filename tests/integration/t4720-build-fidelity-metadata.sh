#!/usr/bin/env bash
# ENV, ARG, EXPOSE, VOLUME, WORKDIR, COPY heredocs and the history lines give what BuildKit
# gives (issue 13, reproducers 4, 8, 10, 11, 12, 13 and the created_by lines; the
# Dockerfiles are in tests/data/fidelity/). BuildKit's rules are in
# frontend/dockerfile/dockerfile2llb (convert.go, convert_expose.go, convert_copy.go) and
# util/system/path.go (NormalizePath).
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
data=$MKIMG_TOP/tests/data/fidelity
build() { # NAME: builds tests/data/fidelity/NAME as NAME, unpacked in $T/NAME
    t_ok "$1: builds" "$MKIMG" build -q -t "$1" "$data/$1"
    umoci unpack --image "$MKIMG_ROOT:$1:latest" "$T/$1" >/dev/null 2>&1
}
cfg() { # NAME JQ: from the raw config blob
    local m c
    m=$(skopeo inspect --raw "oci:$MKIMG_ROOT:$1:latest" | jq -r .config.digest)
    jq -c "$2" "$MKIMG_ROOT/blobs/sha256/${m#sha256:}"
}

# 4. One ENV instruction expands with the values from before it.
build env-one-instruction
t_eq "ENV E=new F=\${E}-f gives F=old-f" "$(cfg env-one-instruction '[.config.Env[] | select(test("^[EF]="))]')" \
    '["E=new","F=old-f"]'

# 8. A COPY heredoc with expansion keeps its quotes.
build copy-heredoc-quotes
t_eq "COPY <<EOF with \$APP keeps the quotes" "$(cat "$T/copy-heredoc-quotes/rootfs/c.ini")" \
    "$(printf '%s\n' 'app="demo"' "name='demo-x'")"

# 10. EXPOSE is normalised; an invalid port is an error naming the line.
build expose-normalised
t_eq "EXPOSE 8000-8002 9090/TCP \$P/udp 53/UDP" "$(cfg expose-normalised '.config.ExposedPorts | keys')" \
    '["53/udp","7000/udp","8000/tcp","8001/tcp","8002/tcp","9090/tcp"]'
t_fails "EXPOSE 8080/http fails" "$MKIMG" build -q -t bad "$data/expose-invalid"
t_eq "EXPOSE 8080/http: the message names the line" "$(tail -1 "$T/.out")" \
    'mkimg: Dockerfile:4: EXPOSE: invalid port "8080/http": invalid proto "http"'

# 11. VOLUME is metadata only.
build volume-metadata-only
t_eq "VOLUME: in the config" "$(cfg volume-metadata-only '.config.Volumes | keys')" '["/data","/var/log/app"]'
t_ok "VOLUME: no directory created" test ! -e "$T/volume-metadata-only/rootfs/data" -a ! -e "$T/volume-metadata-only/rootfs/var/log/app"
t_eq "VOLUME: no layer (the base's only)" "$(skopeo inspect --raw "oci:$MKIMG_ROOT:volume-metadata-only:latest" | jq '.layers | length')" 1
t_eq "VOLUME: an empty_layer history entry" "$(cfg volume-metadata-only '.history[-1] | [.created_by, .empty_layer]')" \
    '["VOLUME [/data /var/log/app]",true]'

# 12. ARG without a value is unset in RUN.
build arg-novalue-unset
t_eq "ARG NOVALUE: \${NOVALUE+set} is empty, not in env; ARG EMPTY= is set" \
    "$(cat "$T/arg-novalue-unset/rootfs/args")" "$(printf 'novalue: empty:set\n0')"

# 13. A relative WORKDIR is cleaned.
build workdir-relative-cleaned
r=$T/workdir-relative-cleaned/rootfs
t_eq "WORKDIR /a then ./c/../d gives /a/d" "$(cfg workdir-relative-cleaned .config.WorkingDir)" '"/a/d"'
t_eq "RUN runs in /a/d" "$(cat "$r/pwd")" /a/d
t_ok "no stray /a/c" test ! -e "$r/a/c"

# History lines as BuildKit writes them (ONBUILD writes none).
build history-created-by
t_eq "created_by of each instruction" "$(cfg history-created-by '[.history[1:][] | .created_by]')" \
    "$(jq -c . <<'JSON'
["ARG V=1.2",
 "COPY --chown=1:2 f /opt/1.2/ # buildkit",
 "VOLUME [/v1.2]",
 "EXPOSE [80/tcp 443/udp]",
 "CMD [\"run\" \"--flag=\\\"q\\\"\"]",
 "ENTRYPOINT [\"/bin/sh\" \"-c\" \"/bin/sh -c 'echo hi'\"]",
 "WORKDIR /srv/./x/",
 "WORKDIR /srv/x/y",
 "ARG NOVALUE",
 "ARG A=x B",
 "ARG STOP=SIGQUIT",
 "STOPSIGNAL SIGQUIT",
 "SHELL [/bin/sh -e -c]",
 "MAINTAINER ops@example.com",
 "RUN |5 V=1.2 NOVALUE= A=x B= STOP=SIGQUIT /bin/sh -e -c true # buildkit"]
JSON
)"
t_done
