#!/usr/bin/env bash
# Output files never follow a symlink planted where mkimg writes its temp file: the attack on
# -o type=tar|oci|docker, an OCI layout's blobs, --iidfile and --metadata-file (issue 15).
# Older mkimg used temp names derived from its PID and opened them O_TRUNC, following links;
# each check here plants a symlink to a victim file under that name (the PID is known: the
# link is made by the very process that then execs mkimg) and asserts that the victim is
# unchanged. The directory is private, so fs.protected_symlinks (which only guards sticky
# world-writable directories) plays no part: the links would be followed if opened.
. "$(dirname "$0")/../lib/test-lib.sh"

t_ok "import busybox base" t_import_busybox
mkdir -p "$T/ctx" "$T/o"
printf 'FROM busybox\nLABEL org.example.t=4450\n' >"$T/ctx/Dockerfile"
echo "host file, must stay" >"$T/victim"

plant() { t_planted "$T/victim" "$@"; }
victim_kept() { # NAME: compares (and restores, so that each check stands alone)
    t_eq "$1: the victim is unchanged" "$(head -c 40 "$T/victim" | tr -c '[:print:]' .)" \
        "host file, must stay."
    echo "host file, must stay" >"$T/victim"
}

o=$T/o
plant "$o/rootfs.tar.mkimg-tmp-%P" "$MKIMG" build -q -t app -o "type=tar,dest=$o/rootfs.tar" \
    "$T/ctx" >/dev/null 2>"$T/err"
victim_kept "-o type=tar"
t_grep "-o type=tar: the output is a tar of the image" '^bin/busybox$' <(tar tf "$o/rootfs.tar" 2>/dev/null)

plant "$o/img.tar.mkimg-tmp-%P" "$MKIMG" build -q -t app -o "type=oci,dest=$o/img.tar" \
    "$T/ctx" >/dev/null 2>"$T/err"
victim_kept "-o type=oci"
t_ok "-o type=oci: skopeo reads the archive" skopeo inspect "oci-archive:$o/img.tar"

plant "$o/d.tar.mkimg-tmp-%P" "$MKIMG" build -q -t app -o "type=docker,dest=$o/d.tar" \
    "$T/ctx" >/dev/null 2>"$T/err"
victim_kept "-o type=docker"
t_ok "-o type=docker: skopeo reads the archive" skopeo inspect "docker-archive:$o/d.tar"

plant "$o/.iid.tmp.%P" "$MKIMG" build -q -t app --iidfile "$o/iid" "$T/ctx" >/dev/null 2>"$T/err"
victim_kept "--iidfile"
t_eq "--iidfile: holds the image ID" "$(cat "$o/iid")" "$("$MKIMG" inspect app | jq -r '.[0].Id')"

plant "$o/.meta.json.tmp.%P" "$MKIMG" build -q -t app --metadata-file "$o/meta.json" "$T/ctx" \
    >/dev/null 2>"$T/err"
victim_kept "--metadata-file"
t_ok "--metadata-file: holds JSON" jq -e '."containerimage.digest"' "$o/meta.json"

# An OCI layout's blob files were opened in place: a link at the config blob's name.
cfg=$("$MKIMG" inspect app | jq -r '.[0].Id' | sed 's/^sha256://')
mkdir -p "$o/layout/blobs/sha256"
ln -s "$T/victim" "$o/layout/blobs/sha256/$cfg"
"$MKIMG" build -q -t app -o "type=oci,dest=$o/layout/" "$T/ctx" >/dev/null 2>"$T/err"
victim_kept "-o type=oci,dest=DIR/"
t_ok "-o type=oci,dest=DIR/: skopeo reads the layout" skopeo inspect "oci:$o/layout"
t_ok "-o type=oci,dest=DIR/: the config blob is a file now" test ! -L "$o/layout/blobs/sha256/$cfg"

# The same as an ordinary user, whose files the victim stands for.
if [ "$(id -u)" = 0 ] && user=$(bash "$MKIMG_TOP/tests/lib/rootless-setup.sh"); then
    mkdir -p "$T/u/o"
    cp "$MKIMG" "$MKIMG_TOP/samples/busybox-rootfs.sh" "$T/u/"
    cp -r "$T/ctx" "$T/u/ctx"
    echo "host file, must stay" >"$T/u/victim"
    chown -R "$user" "$T/u"
    as_user() { su "$user" -s /bin/bash -c "cd '$T/u' && MKIMG_ROOT='$T/u/store' XDG_RUNTIME_DIR= $*"; }
    as_user ./busybox-rootfs.sh rootfs >/dev/null 2>&1
    as_user ./mkimg import rootfs busybox:latest >/dev/null 2>&1
    as_user "bash -c 'ln -s ../victim o/d.tar.mkimg-tmp-\$\$ && ln -s ../victim o/.iid.tmp.\$\$ &&
        exec ./mkimg build -q -t app -o type=docker,dest=o/d.tar --iidfile o/iid ctx'" \
        >/dev/null 2>&1
    t_eq "rootless -o type=docker and --iidfile: the victim is unchanged" \
        "$(head -c 40 "$T/u/victim" | tr -c '[:print:]' .)" "host file, must stay."
    t_ok "rootless: both outputs written" test -s "$T/u/o/d.tar" -a -s "$T/u/o/iid"
else
    t_skip "rootless part needs root and the test user"
fi

# The checks above can fail: the planted links were where the old names pointed, and a
# write through one of them does change the victim.
ln -s "$T/victim" "$T/probe"
echo changed >"$T/probe"
t_eq "a write through such a link reaches the victim" "$(cat "$T/victim")" changed
t_done
