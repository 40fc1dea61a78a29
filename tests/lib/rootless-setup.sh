#!/usr/bin/env bash
# tests/lib/rootless-setup.sh - makes an unprivileged user with subordinate id ranges for the
# rootless tests (run as root; idempotent). Prints the user name.
set -eu
user=mkimgtest
if [ "$(id -u)" != 0 ]; then
    echo "rootless-setup.sh: must run as root" >&2
    exit 1
fi
if ! id -u "$user" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$user" >/dev/null
fi
for f in /etc/subuid /etc/subgid; do
    [ -e "$f" ] || touch "$f"
    grep -q "^$user:" "$f" || echo "$user:200000:65536" >>"$f"
done
command -v newuidmap >/dev/null && command -v newgidmap >/dev/null || {
    echo "rootless-setup.sh: newuidmap/newgidmap missing (apt-get install uidmap)" >&2
    exit 1
}
echo "$user"
