# mkimg - daemonless, rootless container image builder.
#
#   make                 build ./mkimg
#   make deps            install every Debian package needed to build and test (idempotent)
#   make test-deps       deps + what only the tests need (busybox-static for arm64)
#   make check           deps + build + every test; ends with "N passed, N failed"
#   make demo            deps + build + embedded busybox base + build samples/hello
#   make check-fresh     make demo and make check on a pristine Debian 12 root (as root)
#   make SANITIZE=address,undefined   build with sanitizers (into build-san/)
#   make install PREFIX=/usr/local   binary, man pages, bash and zsh completion (DESTDIR too)
#   make docs            generate the man pages and completions into build/gen/
#   make format / make check-format
#   make fuzz            build libFuzzer targets (clang) into build-fuzz/
#   make bench           run the benchmarks in bench/ (not part of check)

CC ?= cc
PREFIX ?= /usr/local
PKG_CONFIG ?= pkg-config
PKGS := libarchive libcrypto libssl jansson libcurl libzstd zlib libseccomp libdeflate

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
	-Wno-format-nonliteral -Werror
BASE_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. \
	-include common/banned.h $(WARNINGS)
# Asked of pkg-config on first use, not when the Makefile is read: `make deps` may be what
# installs pkg-config and the -dev packages (check, demo and bench then build in a new $(MAKE)).
# The eval keeps the answer so pkg-config runs once per make, not once per object.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
# libcurl is not linked: registry/curl-dl.c loads it on first use (it and its dependencies
# cost ~25 ms at every process start otherwise).
PKG_LIBS = $(eval PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(filter-out libcurl,$(PKGS)) \
	2>/dev/null) -lpthread)$(PKG_LIBS)

# Goals that compile stop at once, with one line, when the build packages are missing,
# instead of a screen of compiler or linker errors. Goals that install them (deps, and check,
# demo and bench, which run deps first) and those that compile nothing are not held up.
NO_BUILD_GOALS := deps test-deps bench-deps check demo bench check-fresh clean format check-format
ifneq ($(filter-out $(NO_BUILD_GOALS),$(or $(MAKECMDGOALS),all)),)
MISSING := $(shell command -v $(firstword $(CC)) >/dev/null 2>&1 || echo $(firstword $(CC)); \
	if ! command -v $(PKG_CONFIG) >/dev/null 2>&1; then echo $(PKG_CONFIG); \
	elif ! $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null; then \
	for p in $(PKGS); do $(PKG_CONFIG) --exists $$p 2>/dev/null || echo $$p; done; fi)
ifneq ($(MISSING),)
$(error missing $(MISSING): run `make deps` as root (it installs every package needed), then make again)
endif
endif

ifeq ($(SANITIZE),)
BUILD ?= build
SAN_FLAGS :=
else
BUILD ?= build-san
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SAN_FLAGS) $(LDFLAGS)

# Link order follows the dependency direction: cli -> builder -> {parser, layerstore,
# registry} -> common.
MODULES := builder registry layerstore parser common
lib_of = $(BUILD)/lib$(1).a
LIBS := $(foreach m,$(MODULES),$(call lib_of,$(m)))

srcs_of = $(wildcard $(1)/*.c)
objs_of = $(patsubst %.c,$(BUILD)/%.o,$(call srcs_of,$(1)))

CLI_OBJS := $(call objs_of,cli)
UNIT_SRCS := $(wildcard tests/unit/*/test-*.c)
UNIT_BINS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRCS))

.PHONY: all deps test-deps check check-fresh demo install docs format check-format clean unit-bins fuzz bench bench-deps

all: mkimg

mkimg: $(BUILD)/mkimg
	cp $< $@

$(BUILD)/mkimg: $(CLI_OBJS) $(LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(LIBS) $(PKG_LIBS)

define module_rule
$(call lib_of,$(1)): $(call objs_of,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rule,$(m))))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/tap.h $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIBS) $(PKG_LIBS) $(ALL_LDFLAGS)

unit-bins: $(UNIT_BINS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Debian packages: build, test (skopeo/umoci as independent readers, docker-registry for the
# registry tests, uidmap for rootless, busybox-static for the embedded base image, procps for
# the tests' pgrep, QEMU user emulation for the arm64 builds; the arm64 busybox comes from
# busybox-static:arm64; man-db, groff-base and zsh check the generated man pages and completion;
# strace counts system calls in t4705; curl reads registry manifests in t4171).
DEB_PKGS := build-essential pkg-config clang libclang-rt-14-dev clang-format \
	libarchive-dev libssl-dev libjansson-dev libcurl4-openssl-dev libzstd-dev zlib1g-dev libseccomp-dev \
	libdeflate-dev busybox-static uidmap skopeo umoci docker-registry jq attr python3 zstd bc pigz \
	buildah runc time procps git podman qemu-user-static binfmt-support man-db groff-base zsh strace curl
# $(call apt_install,PACKAGES,TARGET,APT-OPTIONS): installs those of PACKAGES not installed yet.
define apt_install
@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	grep -q 'install ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
	echo "installing:" $$missing; \
	if [ "$$(id -u)" != 0 ]; then echo "make $(2): run as root to install packages" >&2; exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(3) $$missing >/dev/null; \
fi
endef
deps:
	$(call apt_install,$(DEB_PKGS),deps)

# What only the tests need beyond packages: Debian's busybox-static for arm64 (the foreign
# platform tests' base image; this adds arm64 to dpkg's architectures). Not part of demo.
test-deps: deps
	@if [ "$$(id -u)" = 0 ]; then bash -c '. tests/lib/platform.sh && t_arm64_busybox_bin' >/dev/null || \
		{ echo "make test-deps: could not get busybox-static:arm64" >&2; exit 1; }; fi

NPROC := $(shell nproc 2>/dev/null || echo 2)
check: test-deps
	$(MAKE) -j$(NPROC) all unit-bins
	$(MAKE) -j$(NPROC) SANITIZE=address,undefined unit-bins
	bash tests/run.sh

demo: deps
	$(MAKE) -j$(NPROC) all
	bash samples/demo.sh

# The README's two commands on a pristine Debian 12 root (debootstrap, cached in /var/tmp).
check-fresh:
	bash tests/fresh/run.sh

# ---- man pages and shell completion (cli/generate.c) -----------------------------------------
# Written by the binary from the option tables it parses with (`mkimg __generate`), into
# $(BUILD)/gen; `make docs` makes them, `make install` installs them with the binary.
GEN := $(BUILD)/gen
MAN_STAMP := $(GEN)/man/.stamp

$(MAN_STAMP): $(BUILD)/mkimg
	rm -rf $(GEN)/man
	mkdir -p $(GEN)/man
	$(BUILD)/mkimg __generate man $(GEN)/man
	touch $@

$(GEN)/mkimg.bash: $(BUILD)/mkimg
	@mkdir -p $(dir $@)
	$(BUILD)/mkimg __generate bash >$@.tmp
	mv $@.tmp $@

$(GEN)/_mkimg: $(BUILD)/mkimg
	@mkdir -p $(dir $@)
	$(BUILD)/mkimg __generate zsh >$@.tmp
	mv $@.tmp $@

docs: $(MAN_STAMP) $(GEN)/mkimg.bash $(GEN)/_mkimg

install: all docs
	install -D -m 0755 mkimg $(DESTDIR)$(PREFIX)/bin/mkimg
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(GEN)/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 $(GEN)/mkimg.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/mkimg
	install -D -m 0644 $(GEN)/_mkimg $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_mkimg
# ---- end of man pages and shell completion ----------------------------------------------------

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRCS)

check-format:
	clang-format --dry-run -Werror $(FORMAT_SRCS)

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRCS))
FUZZ_LIB_SRCS := $(foreach m,parser layerstore registry common,$(call srcs_of,$(m)))
build-fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	clang $(BASE_CFLAGS) $(PKG_CFLAGS) -Wno-error -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $< $(FUZZ_LIB_SRCS) $(PKG_LIBS)
fuzz: $(FUZZ_BINS)

$(BUILD)/bench/parse-bench: bench/parse-bench.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS) $(ALL_LDFLAGS)

$(BUILD)/bench/layer-bench: bench/layer-bench.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBS) $(PKG_LIBS) $(ALL_LDFLAGS)

# Packages only `make bench` needs, never the tests: docker.io, whose dockerd runs BuildKit as a
# bench peer (bench/dockerd.sh starts a private one); without recommends (apparmor, needrestart).
BENCH_DEB_PKGS := docker.io
bench-deps: test-deps
	$(call apt_install,$(BENCH_DEB_PKGS),bench,--no-install-recommends)

bench: bench-deps
	$(MAKE) all $(BUILD)/bench/parse-bench $(BUILD)/bench/layer-bench
	$(BUILD)/bench/parse-bench
	bash bench/layer.sh
	bash bench/run.sh
	bash bench/parallel.sh
	bash bench/transfer.sh
	bash bench/remote-cache.sh

clean:
	rm -rf build build-san build-fuzz mkimg
