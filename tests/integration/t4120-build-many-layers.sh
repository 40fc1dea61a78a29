#!/usr/bin/env bash
# An image with more layers than one overlay mount takes (overlay stacks at most 500 lower
# directories; here 520, and mkimg merges past 200) still builds, runs and exports: the bottom layers are merged into
# one directory under ROOT/flat, with whiteouts and opaque directories of the merged layers
# honoured. prune removes the merged trees and fsck stays clean.
. "$(dirname "$0")/../lib/test-lib.sh"

t_busybox_rootfs "$T/bb"
# An OCI archive: layer 0 = busybox, then 519 tiny layers. Layer 5 adds /w (layer 150 deletes
# it), layer 10 adds /o/a (layer 170 makes /o opaque with /o/b), every layer adds /l/N.
python3 - "$T/bb" "$T/many.tar" <<'PY'
import hashlib, io, json, os, sys, tarfile
root, out = sys.argv[1], sys.argv[2]
blobs = {}
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    blobs[d] = data
    return "sha256:" + d
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, kind in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
base = io.BytesIO()
with tarfile.open(fileobj=base, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name in sorted(os.listdir(root)):
        t.add(os.path.join(root, name), arcname=name)
layers = [base.getvalue()]
for i in range(1, 520):
    e = [("l", None, "dir"), ("l/%d" % i, b"%d\n" % i, "file")]
    if i == 5:
        e.append(("w", b"w\n", "file"))
    if i == 10:
        e += [("o", None, "dir"), ("o/a", b"a\n", "file")]
    if i == 150:
        e.append((".wh.w", b"", "file"))
    if i == 170:
        e += [("o", None, "dir"), ("o/.wh..wh..opq", b"", "file"), ("o/b", b"b\n", "file")]
    layers.append(layer(e))
descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(l), "size": len(l)} for l in layers]
config = {"architecture": os.popen("dpkg --print-architecture").read().strip(), "os": "linux",
          "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
          "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}
cfg = json.dumps(config).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
    "layers": descs}).encode()
md = blob(manifest)
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "many:latest"}}]}).encode()
with tarfile.open(out, "w") as t:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for d, data in blobs.items():
        add("blobs/sha256/" + d, data)
PY
t_ok "load a 520-layer image" "$MKIMG" load -i "$T/many.tar"
c=$T/c; mkdir -p "$c"; echo hi >"$c/f"
cat >"$c/Dockerfile" <<'DF'
FROM many
RUN ls /l | wc -l > /count && { test -e /w && echo w-present || echo w-gone; } > /wstate && ls /o > /olist
COPY f /f
RUN echo more > /more
DF
t_ok "build FROM it" "$MKIMG" build -q -t many2 "$c"
out() { "$MKIMG" run many2 cat "$1"; }
t_eq "every layer's file is seen" "$(out /count)" "519"
t_eq "a whiteout in a merged layer deletes" "$(out /wstate)" "w-gone"
t_eq "an opaque dir in a merged layer hides what is below" "$(out /olist)" "b"
t_ok "the bottom layers were merged under ROOT/flat" test -n "$(ls -A "$MKIMG_ROOT/flat")"
t_eq "the image has all 523 layers" "$(skopeo inspect --raw "oci:$MKIMG_ROOT:many2:latest" | jq '.layers|length')" "523"
t_ok "export of the rootfs" "$MKIMG" build -q -o "$T/rootfs" "$c"
t_eq "exported: layer 519's file" "$(cat "$T/rootfs/l/519")" "519"
t_ok "exported: no /w" test ! -e "$T/rootfs/w"
t_eq "a rebuild is all cached" "$("$MKIMG" build --progress=plain -t many2 "$c" 2>&1 | grep -c '=> CACHED')" 3
t_ok "fsck is clean with merged trees present" "$MKIMG" fsck
t_ok "prune --all" "$MKIMG" prune --all
t_ok "prune removed the merged trees" test ! -e "$MKIMG_ROOT/flat"
t_ok "fsck is clean" "$MKIMG" fsck
t_eq "run after prune merges again" "$("$MKIMG" run many2 cat /l/1)" "1"
t_eq "no temp dir left" "$(ls -A "$MKIMG_ROOT/tmp" | wc -l)" 0
t_done
