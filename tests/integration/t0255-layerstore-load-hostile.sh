#!/usr/bin/env bash
# load of odd and hostile archives: symlinked layers (older docker save), entry names that
# try to leave, link loops, missing layers. Archive names are only looked up, never used as
# paths, so nothing may appear outside the store.
. "$(dirname "$0")/../lib/test-lib.sh"

mkdir -p "$T/root/etc" && echo hi >"$T/root/etc/motd"
"$MKIMG" import "$T/root" app:1 >/dev/null
id=$("$MKIMG" inspect app:1 | jq -r '.[0].Id')
"$MKIMG" save --format docker-archive -o "$T/d.tar" app:1
mkdir "$T/d" && tar -xf "$T/d.tar" -C "$T/d"
layer=$(jq -r '.[0].Layers[0]' "$T/d/manifest.json")
config=$(jq -r '.[0].Config' "$T/d/manifest.json")

# Older docker save: each layer in <id>/layer.tar, duplicates as relative symlinks.
python3 - "$T/d" "$T/sym.tar" "$layer" "$config" <<'PY'
import sys, tarfile, json, io
d, out, layer, config = sys.argv[1:]
with tarfile.open(out, "w") as t:
    t.add(f"{d}/{layer}", arcname="aaa/layer.tar")
    li = tarfile.TarInfo("bbb/layer.tar"); li.type = tarfile.SYMTYPE; li.linkname = "../aaa/layer.tar"
    t.addfile(li)
    t.add(f"{d}/{config}", arcname="cfg.json")
    m = json.dumps([{"Config": "cfg.json", "RepoTags": ["sym:1"], "Layers": ["bbb/layer.tar"]}]).encode()
    ti = tarfile.TarInfo("./manifest.json"); ti.size = len(m); t.addfile(ti, io.BytesIO(m))
PY
t_eq "a layer reached through a symlink loads" "$("$MKIMG" load -i "$T/sym.tar" 2>&1)" "Loaded image: sym:1"
t_eq "with the same ID" "$("$MKIMG" inspect sym:1 | jq -r '.[0].Id')" "$id"

mkdir "$T/cwd" && cd "$T/cwd"
python3 - "$T/d" "$T/evil.tar" "$layer" "$config" "$T" <<'PY'
import sys, tarfile, json, io
d, out, layer, config, top = sys.argv[1:]
def reg(t, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
with tarfile.open(out, "w") as t:
    reg(t, "../../../../../../" + top.lstrip("/") + "/escaped-dotdot", b"x")
    reg(t, top + "/escaped-abs", b"x")
    li = tarfile.TarInfo("link-out"); li.type = tarfile.SYMTYPE; li.linkname = top
    t.addfile(li)
    reg(t, "link-out/escaped-link", b"x")
    hl = tarfile.TarInfo("hard-out"); hl.type = tarfile.LNKTYPE; hl.linkname = "/etc/passwd"
    t.addfile(hl)
    t.add(f"{d}/{layer}", arcname="l.tar")
    t.add(f"{d}/{config}", arcname="c.json")
    m = json.dumps([{"Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l.tar"]},
                    {"Config": "hard-out", "RepoTags": ["evil:2"], "Layers": []}]).encode()
    reg(t, "manifest.json", m)
PY
"$MKIMG" load -i "$T/evil.tar" >"$T/out" 2>&1; rc=$?
t_eq "a hardlink to a host file is no config" "$rc" 1
t_grep "it is not found in the archive" '^mkimg: .*evil.tar: loading: the archive has no "hard-out"$' "$T/out"
t_eq "nothing written through .., absolute names or symlinks" \
    "$(ls "$T" | grep -c escaped; ls "$T/cwd" | wc -l)" "0
0"
t_ok "the first image still loaded" "$MKIMG" inspect evil:1

python3 - "$T/loop.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    for a, b in (("manifest.json", "x"), ("x", "manifest.json")):
        li = tarfile.TarInfo(a); li.type = tarfile.SYMTYPE; li.linkname = b; t.addfile(li)
PY
"$MKIMG" load -i "$T/loop.tar" >/dev/null 2>"$T/err"; rc=$?
t_eq "a symlink loop is an error, not a hang" "$rc" 1
t_grep "names the archive" "^mkimg: $T/loop.tar: loading: not an OCI or Docker archive" "$T/err"

python3 - "$T/missing.tar" "$T/d" "$config" <<'PY'
import sys, tarfile, json, io
out, d, config = sys.argv[1:]
with tarfile.open(out, "w") as t:
    t.add(f"{d}/{config}", arcname="c.json")
    m = json.dumps([{"Config": "c.json", "RepoTags": ["gone:1"], "Layers": ["nope.tar"]}]).encode()
    ti = tarfile.TarInfo("manifest.json"); ti.size = len(m); t.addfile(ti, io.BytesIO(m))
PY
"$MKIMG" load -i "$T/missing.tar" >/dev/null 2>"$T/err"
t_eq "a missing layer is named" "$(cat "$T/err")" \
    "mkimg: $T/missing.tar: loading: the archive has no layer \"nope.tar\""
t_eq "nothing half-loaded is tagged" "$("$MKIMG" images -q | wc -l)" 1
t_eq "store clean" "$("$MKIMG" fsck)" "store is clean"
t_done
