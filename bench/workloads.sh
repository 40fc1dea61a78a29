#!/usr/bin/env bash
# bench/workloads.sh DIR - writes the benchmark's build contexts (issue 7) into DIR/<workload>/.
# Each context has a Dockerfile starting FROM busybox:latest; DIR/<workload>.touch holds
# the path (relative to the context) of the one COPY source the `touch` scenario changes.
# Random contents make the data incompressible, so neither builder gains from compression.
# BIG_MB (default 1024) and IGNORE_MB (default 500) shrink the large workloads for a quick run.
set -euo pipefail
out=$1
big_mb=${BIG_MB:-1024}
ignore_mb=${IGNORE_MB:-500}
mkdir -p "$out"

rand_file() { # path, KiB
    head -c "$(($2 * 1024))" /dev/urandom >"$1"
}

# hello: the smallest useful build.
d=$out/hello
mkdir -p "$d"
echo "hello from the bench" >"$d/msg.txt"
cat >"$d/Dockerfile" <<'EOF'
FROM busybox:latest
RUN echo hello > /file
COPY msg.txt /msg.txt
WORKDIR /app
CMD ["cat", "/msg.txt"]
EOF
echo msg.txt >"$d.touch"

# manysteps: 40 instructions after FROM, ten rounds of ENV, RUN, WORKDIR, COPY.
d=$out/manysteps
mkdir -p "$d"
echo "FROM busybox:latest" >"$d/Dockerfile"
for i in $(seq 1 10); do
    echo "step $i" >"$d/f$i.txt"
    cat >>"$d/Dockerfile" <<EOF
ENV STEP$i=value$i
RUN echo \$STEP$i > /s$i
WORKDIR /w$i
COPY f$i.txt ./
EOF
done
echo f5.txt >"$d.touch"

# manyfiles: 20,000 files of 3 KiB (~60 MB) in 20 x 10 directories, then a RUN that counts them.
d=$out/manyfiles
mkdir -p "$d"
python3 - "$d/tree" <<'EOF'
import os, sys
root = sys.argv[1]
for a in range(20):
    for b in range(10):
        p = os.path.join(root, "d%02d" % a, "s%d" % b)
        os.makedirs(p)
        for c in range(100):
            with open(os.path.join(p, "f%03d" % c), "wb") as f:
                f.write(os.urandom(3072))
EOF
cat >"$d/Dockerfile" <<'EOF'
FROM busybox:latest
COPY tree /data/
RUN find /data -type f | wc -l > /count
EOF
echo tree/d10/s5/f050 >"$d.touch"

# bigfile: one incompressible file of BIG_MB MiB.
d=$out/bigfile
mkdir -p "$d"
head -c "$((big_mb * 1024 * 1024))" /dev/urandom >"$d/big.bin"
cat >"$d/Dockerfile" <<'EOF'
FROM busybox:latest
COPY big.bin /big.bin
EOF
echo big.bin >"$d.touch"

# multistage: a build stage produces files, the final stage copies them out.
d=$out/multistage
mkdir -p "$d/src"
for i in $(seq 1 20); do rand_file "$d/src/part$i.txt" 16; done
cat >"$d/Dockerfile" <<'EOF'
FROM busybox:latest AS build
COPY src/ /src/
RUN mkdir -p /out && cat /src/*.txt > /out/all.bin && cp /src/part1.txt /out/
FROM busybox:latest
COPY --from=build /out /app/
CMD ["ls", "-l", "/app"]
EOF
echo src/part3.txt >"$d.touch"

# ignore: a small application next to IGNORE_MB MiB that .dockerignore excludes.
d=$out/ignore
mkdir -p "$d/app" "$d/big"
for i in $(seq 1 10); do rand_file "$d/app/a$i.txt" 4; done
for i in $(seq 1 $((ignore_mb / 10))); do head -c $((10 * 1024 * 1024)) /dev/urandom >"$d/big/blob$i"; done
printf 'big\n' >"$d/.dockerignore"
cat >"$d/Dockerfile" <<'EOF'
FROM busybox:latest
COPY . /src/
RUN ls -R /src > /listing
EOF
echo app/a1.txt >"$d.touch"

# stages: four independent stages that wait 1 s each (sleeping, as on the network or a disk
# would), then a final stage that copies from all four.
d=$out/stages
mkdir -p "$d"
echo "stages" >"$d/msg.txt"
{
    for s in a b c d; do
        echo "FROM busybox:latest AS $s"
        echo "RUN sleep 1 && echo $s > /$s"
    done
    echo "FROM busybox:latest"
    for s in a b c d; do echo "COPY --from=$s /$s /$s"; done
    echo "COPY msg.txt /msg.txt"
} >"$d/Dockerfile"
echo msg.txt >"$d.touch"
