#!/usr/bin/env python3
"""tests/diff/compare.py - compares the image mkimg built with the one Buildah built.

Usage: compare.py TABLE CASEDIR MKIMG_LAYOUT MKIMG_REF BUILDAH_LAYOUT BUILDAH_REF

Each image is read from an OCI image layout (index.json, blobs/): its layers are applied in
order to an in-memory tree (whiteouts and opaque directories honoured) and its raw config
blob is read (not `skopeo inspect --config`, which drops OnBuild, Shell and Healthcheck).
Every difference is one line:

    fs PATH: only in mkimg|only in buildah (TYPE MODE UID:GID)
    fs PATH: FIELD mkimg=VALUE buildah=VALUE        (type, mode, owner, sha256, target,
                                                     links, xattrs)
    config FIELD: mkimg=VALUE buildah=VALUE

A difference is allowed only by a row of TABLE (tests/diff/DIFFERENCES.md) whose "allows"
regex matches the line and that applies to the case: rows of scope "every case", and rows a
case names in its Dockerfile with "# diff-allow: ID [PATH...]" (with paths, only lines about
those paths or below them). A declared row that allows nothing is an error too, so the
table and the corpus cannot drift apart. Prints the lines and exits 1 when any is left.
"""
import hashlib
import json
import os
import re
import sys
import tarfile

CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild"]


def blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def load_image(layout, ref):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            with open(blob(layout, m["digest"])) as f:
                manifest = json.load(f)
            with open(blob(layout, manifest["config"]["digest"])) as f:
                config = json.load(f)
            return config, [blob(layout, l["digest"]) for l in manifest["layers"]]
    raise SystemExit("compare.py: no image %r in %s" % (ref, layout))


def norm(name):
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return "/" + name if name not in ("", ".") else "/"


def kind(m):
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.isfifo():
        return "fifo"
    if m.ischr() or m.isblk():
        return "device"
    return "file"


def apply_layer(tree, path):
    """tree: path -> dict(type, mode, owner, sha256, target, xattrs, inode)."""
    with tarfile.open(path, "r:*") as t:
        for m in t:
            p = norm(m.name)
            parent, base = os.path.split(p)
            if base == ".wh..wh..opq":
                prefix = parent.rstrip("/") + "/"
                for k in [k for k in tree if k.startswith(prefix)]:
                    del tree[k]
                continue
            if base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for k in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                    del tree[k]
                continue
            old = tree.get(p)
            if old is not None and not (old["type"] == "dir" and m.isdir()):
                for k in [k for k in tree if k.startswith(p.rstrip("/") + "/")]:
                    del tree[k]
            xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape").hex()
                      for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            e = {"mode": "%o" % (m.mode & 0o7777), "owner": "%d:%d" % (m.uid, m.gid),
                 "xattrs": json.dumps(xattrs, sort_keys=True), "sha256": "", "target": ""}
            if m.islnk():
                src = tree.get(norm(m.linkname))
                if src is None:
                    raise SystemExit("compare.py: %s: hardlink to missing %s" % (path, m.linkname))
                e = dict(src)
                tree[p] = e  # same dict: one inode
                continue
            e["type"] = kind(m)
            if m.issym():
                e["target"] = m.linkname
            elif m.isfile():
                h = hashlib.sha256()
                f = t.extractfile(m)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                e["sha256"] = h.hexdigest()[:16]
            tree[p] = e


def load_tree(layers):
    tree = {}
    for l in layers:
        apply_layer(tree, l)
    # Hardlink groups: paths sharing one dict.
    groups = {}
    for p, e in tree.items():
        groups.setdefault(id(e), []).append(p)
    out = {}
    for p, e in tree.items():
        d = dict(e)
        others = sorted(q for q in groups[id(e)] if q != p)
        d["links"] = ",".join(others)
        out[p] = d
    return out


def summary(e):
    return "%s %s %s" % (e["type"], e["mode"], e["owner"])


def diff_trees(a, b):
    lines = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            lines.append("fs %s: only in mkimg (%s)" % (p, summary(a[p])))
        elif p not in a:
            lines.append("fs %s: only in buildah (%s)" % (p, summary(b[p])))
        else:
            for f in ("type", "mode", "owner", "sha256", "target", "links", "xattrs"):
                if a[p][f] != b[p][f]:
                    lines.append("fs %s: %s mkimg=%s buildah=%s" % (p, f, a[p][f], b[p][f]))
    return lines


def config_value(cfg, field):
    v = (cfg.get("config") or {}).get(field)
    if v in (None, [], {}, ""):
        return None  # absent, null and empty mean the same to a runtime
    if isinstance(v, dict) and field in ("ExposedPorts", "Volumes"):
        return sorted(v)
    return v


def diff_configs(a, b):
    lines = []
    for f in CONFIG_FIELDS:
        va, vb = config_value(a, f), config_value(b, f)
        if va != vb:
            if f == "Labels":
                keys = sorted(set(va or {}) | set(vb or {}))
                for k in keys:
                    x, y = (va or {}).get(k), (vb or {}).get(k)
                    if x != y:
                        lines.append("config Labels.%s: mkimg=%s buildah=%s"
                                     % (k, json.dumps(x), json.dumps(y)))
                continue
            lines.append("config %s: mkimg=%s buildah=%s"
                         % (f, json.dumps(va, sort_keys=True), json.dumps(vb, sort_keys=True)))
    return lines


def read_table(path):
    """Rows of the markdown table: | `id` | scope | what | BuildKit | source | `regex` |"""
    rows = {}
    for line in open(path, encoding="utf-8"):
        # Cells split at unescaped "|"; "\|" (markdown's escape) is a "|" in the regex.
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 6 or not cells[0].startswith("`"):
            continue
        rid = cells[0].strip("`")
        # "-": a row about the build's input (run.sh), never about the result.
        regex = None if cells[-1] == "-" else re.compile(cells[-1].strip("`"))
        rows[rid] = {"scope": cells[1], "regex": regex}
    return rows


def read_declared(casedir):
    decl = []
    with open(os.path.join(casedir, "Dockerfile"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#\s*diff-allow:\s*(\S+)(.*)$", line)
            if m:
                decl.append((m.group(1), m.group(2).split()))
    return decl


def line_path(line):
    m = re.match(r"fs (/\S*):", line)
    return m.group(1) if m else None


def main():
    table, casedir, la, ra, lb, rb = sys.argv[1:7]
    rows = read_table(table)
    decl = read_declared(casedir)
    cfg_a, layers_a = load_image(la, ra)
    cfg_b, layers_b = load_image(lb, rb)
    lines = diff_trees(load_tree(layers_a), load_tree(layers_b)) + diff_configs(cfg_a, cfg_b)
    bad = []
    for rid, _ in decl:
        if rid not in rows:
            bad.append("declared diff-allow %r is not a row of %s" % (rid, table))
    used = set()
    for line in lines:
        why = None
        for rid, r in rows.items():
            if r["scope"] == "every case" and r["regex"] and r["regex"].search(line):
                why = rid
                break
        for i, (rid, paths) in enumerate(decl):
            r = rows.get(rid)
            if why or not r or not r["regex"] or not r["regex"].search(line):
                continue
            p = line_path(line)
            if paths and not (p and any(p == q or p.startswith(q.rstrip("/") + "/")
                                        for q in paths)):
                continue
            why = rid
            used.add(i)
        if why:
            print("allowed (%s): %s" % (why, line))
        else:
            bad.append(line)
    for i, (rid, paths) in enumerate(decl):
        if i not in used and rid in rows and rows[rid]["regex"]:
            bad.append("declared diff-allow %s %s allowed nothing (stale?)" % (rid, " ".join(paths)))
    for line in bad:
        print("DIFF: " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
