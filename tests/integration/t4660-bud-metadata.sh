#!/usr/bin/env bash
# buildah-bud cases: onbuild, shell, healthcheck, maintainer, unrecognized, workdir-user,
# copy-workdir, volume-perms, volume-ownership, preserve-volumes.
. "$(dirname "$0")/../lib/test-lib.sh"
. "$MKIMG_TOP/tests/lib/bud-lib.sh"

t_ok "import bases" bud_images alpine busybox
# ubuntu: busybox with a "bash" that is busybox sh keeping its own name as $0.
cp -a "$T/bbroot" "$T/ubroot" && printf '#!/bin/sh\nif [ "$1" = -c ]; then shift; c=$1; shift; exec /bin/sh -c "$c" "$0" "$@"; fi\nexec /bin/sh "$@"\n' >"$T/ubroot/bin/bash" && chmod 755 "$T/ubroot/bin/bash"
t_ok "import ubuntu" "$MKIMG" import "$T/ubroot" ubuntu

# ---- onbuild
c=$BUD/onbuild
t_ok "onbuild: Dockerfile" bud_build -t onbuild "$c"
t_eq "onbuild: triggers in the config" "$(bud_cfg onbuild:latest '.config.OnBuild')" '["RUN touch /onbuild1","RUN touch /onbuild2"]'
t_ok "onbuild: Dockerfile1 (FROM onbuild)" bud_build -t onbuild1 -f "$c/Dockerfile1" "$c"
bud_unpack onbuild1:latest
t_ok "onbuild: parent's triggers ran" test -e "$T/u/rootfs/onbuild1" -a -e "$T/u/rootfs/onbuild2"
t_eq "onbuild: child's own triggers only" "$(bud_cfg onbuild1:latest '.config.OnBuild')" '["RUN touch /onbuild3"]'
t_ok "onbuild: Dockerfile2" bud_build -t onbuild2 -f "$c/Dockerfile2" "$c"
t_eq "onbuild: Dockerfile2 triggers" "$(bud_cfg onbuild2:latest '.config.OnBuild')" '["RUN touch /onbuild1","RUN touch /onbuild2"]'
bud_unpack onbuild2:latest
t_ok "onbuild: triggers do not run in the image that declares them" test ! -e "$T/u/rootfs/onbuild1"

# ---- shell
c=$BUD/shell
t_ok "shell: SHELL" bud_build -t sh "$c"
t_eq "shell: Shell in the config" "$(bud_cfg sh:latest '.config.Shell')" '["/bin/sh","-c"]'
t_ok "shell: default" bud_build --no-cache -t sh -f "$c/Dockerfile.build-shell-default" "$c"
t_grep "shell: default is /bin/sh" '^SHELL=/bin/sh$' "$T/out"
t_ok "shell: custom" bud_build --no-cache -t sh -f "$c/Dockerfile.build-shell-custom" "$c"
t_grep "shell: custom is /bin/bash" '^SHELL=/bin/bash$' "$T/out"

# ---- healthcheck
t_ok "healthcheck" bud_build -t hc "$BUD/healthcheck"
t_eq "healthcheck: config" "$(bud_cfg hc:latest '.config.Healthcheck|[.Test,.StartInterval,.StartPeriod,.Interval,.Timeout,.Retries]')" \
    '[["CMD-SHELL","curl -f http://localhost/ || exit 1"],30000000000,600000000000,300000000000,3000000000,4]'

# ---- maintainer
t_ok "maintainer" bud_build -t mt "$BUD/maintainer"
t_eq "maintainer: author" "$(bud_cfg mt:latest '.author')" '"kilroy"'
t_ok "maintainer: build without -t" bud_build "$BUD/maintainer"

# ---- unrecognized
t_fails "unrecognized: BOGUS fails" bud_build -t un "$BUD/unrecognized"
t_grep "unrecognized: message names BOGUS" 'BOGUS' "$T/out"

# ---- workdir-user (BuildKit: the WORKDIR is created as the current USER)
t_ok "workdir-user" bud_build --no-cache -t wu "$BUD/workdir-user"
t_grep "workdir-user: owned by the USER" '^1000:1000 /home/http/public$' "$T/out"

# ---- copy-workdir
c=$BUD/copy-workdir
t_ok "copy-workdir: Dockerfile" bud_build -t cw "$c"
bud_unpack cw:latest
t_ok "copy-workdir: /file1.txt" cmp "$T/u/rootfs/file1.txt" "$c/file1.txt"
t_ok "copy-workdir: /subdir/file2.txt (into the existing dir)" cmp "$T/u/rootfs/subdir/file2.txt" "$c/file2.txt"
t_ok "copy-workdir: Dockerfile.2" bud_build --no-cache -t cw2 -f "$c/Dockerfile.2" "$c"
bud_unpack cw2:latest
t_ok "copy-workdir: Dockerfile.2: /subdir/file1.txt" cmp "$T/u/rootfs/subdir/file1.txt" "$c/file1.txt"

# ---- volume-perms: VOLUME is metadata only in BuildKit (dockerfile2llb/convert.go,
# dispatchVolume), so the chmod of the volume's directory that Buildah's case expects to
# exist fails; once the directory is made, BuildKit keeps what RUN does under a VOLUME.
t_fails "volume-perms: VOLUME makes no directory" bud_build --no-cache -t vp "$BUD/volume-perms"
t_grep "volume-perms: the chmod fails" 'chmod.*/vol/subvol' "$T/out"
mkdir -p "$T/vp" && sed 's|^VOLUME /vol/subvol|RUN mkdir -p /vol/subvol\n&|' "$BUD/volume-perms/Dockerfile" >"$T/vp/Dockerfile"
t_ok "volume-perms: with the directory made first" bud_build --no-cache -t vp "$T/vp"
bud_unpack vp:latest
t_eq "volume-perms: chmod after VOLUME kept" "$(stat -c %a "$T/u/rootfs/vol/subvol")" 711
t_ok "volume-perms: file after VOLUME kept" test -s "$T/u/rootfs/vol/subvol/subvolfile"
bud_na "volume-perms: --compat-volumes" "a buildah flag (the classic builder's behaviour)"

# ---- volume-ownership
t_ok "volume-ownership" bud_build --no-cache -t vo "$BUD/volume-ownership"
bud_unpack vo:latest
t_eq "volume-ownership: owner kept" "$(stat -c %u:%g "$T/u/rootfs/vol/subvol")" 1000:1001

# ---- preserve-volumes
t_ok "preserve-volumes" bud_build --no-cache -t pv "$BUD/preserve-volumes"
bud_unpack pv:latest
for f in subvol/subsubvol/subsubvolfile volfile subvol/subvolfile anothervolfile Dockerfile Dockerfile2; do
    t_ok "preserve-volumes: /vol/$f" test -e "$T/u/rootfs/vol/$f"
done
bud_na "preserve-volumes: --compat-volumes" "a buildah flag (the classic builder's behaviour)"
t_done
