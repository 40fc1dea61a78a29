python3 - <<'PY'
import io, tarfile
caps = bytes.fromhex("0100000200200000000000000000000000000000")
with tarfile.open("ping-tools.tar", "w", format=tarfile.PAX_FORMAT) as t:
    d = tarfile.TarInfo("bin"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
    data = b"#!/bin/sh\necho ping\n"
    i = tarfile.TarInfo("bin/xping"); i.size = len(data); i.mode = 0o755
    i.pax_headers = {"SCHILY.xattr.security.capability": caps.decode("latin-1")}
    t.addfile(i, io.BytesIO(data))
PY
