#!/usr/bin/env bash
# A COPY from the context whose files the hash cache does not know (a first build, a touched
# file) reads each of them once: the copy hashes what it writes, and the step key is made from
# those digests afterwards (issue 19: the key read the whole file first, then the copy read it
# again). The key is the one a build that hashed first would make: a touched file with the
# same bytes is a hit, one with other bytes a miss; the digests feed the hash cache, so a
# rebuild reads nothing. Counted with strace: the bytes read from fds of the context file.
# The durability window's marker is on disk before the copy writes (its fsync waited behind
# the copy's dirty pages when the commit made it).
. "$(dirname "$0")/../lib/test-lib.sh"

if ! command -v strace >/dev/null; then
    t_skip "strace is not installed"
    t_done
fi
ctx=$T/ctx
mkdir -p "$ctx/tree/sub"
head -c $((16 << 20)) /dev/urandom >"$ctx/big.bin"
for i in $(seq 1 30); do echo "small $i" >"$ctx/tree/f$i"; done
echo sub >"$ctx/tree/sub/g"
ln "$ctx/tree/f1" "$ctx/tree/sub/link1"
ln -s f2 "$ctx/tree/sym"
printf 'FROM scratch\nCOPY big.bin /big.bin\nCOPY tree /tree/\n' >"$ctx/Dockerfile"
read_bytes() { # TRACE FILE: bytes read (read, pread64) from fds naming FILE
    # A call another thread interrupts is cut in two lines: "<unfinished ...>", then
    # "<... read resumed> ... = N" (the copy's threads read small files).
    awk -v f="<$2>" '
        index($0, f) && $0 ~ /^[0-9]+ +p?read(64)?\(/ {
            if ($0 ~ /<unfinished \.\.\.>$/) { pend[$1] = 1; next }
            n = $NF; if (n > 0) s += n; next }
        pend[$1] && $0 ~ /^[0-9]+ +<\.\.\. p?read(64)? resumed>/ {
            delete pend[$1]; n = $NF; if (n > 0) s += n }
        END { print s + 0 }' "$1"
}
trace() { # NAME: a build of ctx tagged NAME under strace into $T/NAME.trace
    strace -f -y -qq -e trace=read,pread64,write,fsync -o "$T/$1.trace" \
        "$MKIMG" build -q -t "$1" "$ctx"
}
size=$((16 << 20))
t_ok "a first build under strace" trace cold
n=$(read_bytes "$T/cold.trace" "$ctx/big.bin")
t_ok "the big file is read once ($n bytes read of $size)" test "$n" -eq "$size"
n=$(read_bytes "$T/cold.trace" "$ctx/tree/f7")
t_ok "so is a small one ($n bytes read of 8)" test "$n" -eq 8
umoci unpack --image "$MKIMG_ROOT:cold:latest" "$T/out" >/dev/null 2>&1
t_ok "the big file arrives whole" cmp "$ctx/big.bin" "$T/out/rootfs/big.bin"
t_ok "the tree arrives whole" diff -r "$ctx/tree" "$T/out/rootfs/tree"
t_ok "a hard link stays one" test "$(stat -c %i "$T/out/rootfs/tree/f1")" = \
    "$(stat -c %i "$T/out/rootfs/tree/sub/link1")"
id=$("$MKIMG" inspect --format '{{.Id}}' cold)
first() { grep -nE "$1" "$T/cold.trace" | head -n 1 | cut -d: -f1; }
m=$(first '^[0-9]+ +fsync\([0-9]+<[^>]*/unsynced/[^>/]*>')
w=$(first '^[0-9]+ +write\([0-9]+<[^>]*/big\.bin>')
t_ok "the marker is synced (trace line ${m:-none}) before the copy writes (line ${w:-none})" \
    test -n "$m" -a -n "$w" -a "${m:-0}" -lt "${w:-0}"

t_ok "a rebuild under strace" trace warm
n=$(read_bytes "$T/warm.trace" "$ctx/big.bin")
t_ok "a rebuild reads nothing of the file ($n bytes)" test "$n" -eq 0
n=$(read_bytes "$T/warm.trace" "$ctx/tree/sub/link1")
t_ok "nor of a hard link's other name ($n bytes)" test "$n" -eq 0
t_eq "a rebuild gives the same image" "$("$MKIMG" inspect --format '{{.Id}}' warm)" "$id"

touch "$ctx/big.bin" "$ctx/tree/f3"
t_ok "a build after a touch under strace" trace touched
n=$(read_bytes "$T/touched.trace" "$ctx/big.bin")
t_ok "the touched file is read once ($n bytes)" test "$n" -eq "$size"
t_eq "same bytes: the same image (the copies were hits)" \
    "$("$MKIMG" inspect --format '{{.Id}}' touched)" "$id"

printf 'x' | dd of="$ctx/big.bin" bs=1 seek=1000 conv=notrunc status=none
t_ok "a build after a change" "$MKIMG" build -q -t changed "$ctx"
t_ok "gives another image" test "$("$MKIMG" inspect --format '{{.Id}}' changed)" != "$id"
umoci unpack --image "$MKIMG_ROOT:changed:latest" "$T/out2" >/dev/null 2>&1
t_ok "with the new bytes" cmp "$ctx/big.bin" "$T/out2/rootfs/big.bin"
t_ok "a rebuild of the change is a hit" "$MKIMG" build -q -t changed2 "$ctx"
t_eq "with the same image" "$("$MKIMG" inspect --format '{{.Id}}' changed2)" \
    "$("$MKIMG" inspect --format '{{.Id}}' changed)"
t_done
