#!/usr/bin/env bash
# The RUN seccomp filter is compiled once per build, in mkimg, and only loaded in each RUN's
# process: libseccomp compiling it there cost every RUN a millisecond and a dozen probing
# seccomp() calls. The filter still refuses what it refuses (t4900 has the full list).
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
t_import_busybox
mkdir -p "$T/c"
printf 'FROM busybox\nRUN echo 1 >/a\nRUN echo 2 >/b\nRUN echo 3 >/c\nRUN unshare -U true 2>/dev/null; echo $? >/d\n' \
    >"$T/c/Dockerfile"
t_ok "a build of four RUNs under strace" strace -f -qq -e trace=seccomp -o "$T/trace" \
    "$MKIMG" build -q -t s "$T/c"
# The loads: SECCOMP_SET_MODE_FILTER with a program, one per RUN, each in its own process.
loads=$(grep -c 'SECCOMP_SET_MODE_FILTER, [^,]*, {len=' "$T/trace" || true)
procs=$(grep 'SECCOMP_SET_MODE_FILTER, [^,]*, {len=' "$T/trace" | awk '{print $1}' | sort -u | wc -l)
t_eq "one filter load per RUN" "$loads" 4
calls=$(grep -c 'seccomp(' "$T/trace" || true)
others=$(grep 'seccomp(' "$T/trace" | grep -vc 'SECCOMP_SET_MODE_FILTER, [^,]*, {len=' || true)
perrun=$(grep 'seccomp(' "$T/trace" | awk -v p="$(grep 'SECCOMP_SET_MODE_FILTER, [^,]*, {len=' "$T/trace" | awk '{print $1}' | head -1)" '$1 == p' | wc -l)
t_eq "a RUN's process makes no other seccomp() call ($calls in all, $others probing)" "$perrun" 1
t_eq "in $procs processes" "$procs" 4
t_eq "the filter is in force" "$("$MKIMG" run --rm s cat /d)" 1
t_done
