# advd - adversarial-training service.
#
#   make            build bin/ (installs missing Debian packages first, as root):
#                   bin/advbench, the daemon bin/advd, its client bin/advctl and
#                   bin/advload (the daemon's loop under load)
#   make demo       start advd, PGD-train cnn-small, evaluate it with APGD-CE (scripts/demo.sh)
#   make check      build and run every Check test and the Python client's (pytest)
#   make check-browser  only advctl report's test (tidy, headless Chromium)
#   make check-asan the Check programs under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       each parser's libFuzzer harness (tests/fuzz/) for FUZZ_S=60
#                   seconds, with clang (build-fuzz/, scripts/fuzz.sh)
#   make bench      side-by-side throughput against ../shared/peers/torch_peer.py,
#                   then advd under load (scripts/bench-load.sh), then 2 MPI
#                   ranks against 2 threads (make bench-mpi)
#   make deps       install missing Debian packages
#   PORTABLE=1      build for any x86-64-v3 machine instead of -march=native
#   GEMM=openblas   use OpenBLAS's sgemm instead of core/gemm.c's kernels

# Two stages, so that the first command on a fresh machine works: the
# outer make (ADV_INNER unset) installs what is missing (scripts/deps.sh),
# then runs the same goals in a sub-make, which reads pkg-config's flags
# only now that the packages are there. Goals that need no packages
# (clean, uninstall) skip the install.
ifeq ($(ADV_INNER),)
GOALS    := $(if $(MAKECMDGOALS),$(MAKECMDGOALS),all)
NO_DEPS  := clean uninstall
DEPS_FOR := $(strip $(filter bench,$(GOALS)) $(filter fuzz,$(GOALS)) $(filter deb,$(GOALS)) \
              $(if $(filter check check-asan check-browser,$(GOALS)),report slurm) \
              $(if $(filter all check demo bench bench-mpi deps,$(GOALS)),mpi))
.PHONY: $(GOALS) adv-outer
adv-outer:
ifneq ($(filter-out $(NO_DEPS),$(GOALS)),)
	@sh scripts/deps.sh $(DEPS_FOR)
endif
	@$(MAKE) --no-print-directory ADV_INNER=1 $(GOALS)
$(GOALS): adv-outer
	@:
else
CC       ?= cc
PORTABLE ?= 0
BUILD    ?= build
BIN      ?= bin
SAN      ?=

ifeq ($(PORTABLE),1)
ARCH := -march=x86-64-v3
else
ARCH := -march=native
endif

PKGS     := libpng zlib check
CFLAGS   ?= -O2 -g
override CFLAGS += $(ARCH) -std=gnu11 -fopenmp -fno-math-errno -Wall -Wextra -Wno-unused-parameter \
            -I. -Icore $(SAN) $(shell pkg-config --cflags libpng zlib 2>/dev/null)
LDFLAGS  += -fopenmp $(SAN)
CORE_LIBS := $(shell pkg-config --libs libpng zlib 2>/dev/null) -lm
ifeq ($(GEMM),openblas)
override CFLAGS += -DADV_GEMM_OPENBLAS
CORE_LIBS += -lopenblas
BUILD     := $(BUILD)-openblas
BIN       := $(BUILD)/bin
endif
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# The daemon's side: the wire protocol (proto/) and the SQLite store.
override CFLAGS += $(shell pkg-config --cflags jansson sqlite3 libuv 2>/dev/null)
ADV_LIBS := $(shell pkg-config --libs jansson sqlite3 2>/dev/null)
UV_LIBS  := $(shell pkg-config --libs libuv 2>/dev/null)

CORE_SRC := $(wildcard core/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
PROTO_SRC := $(wildcard proto/*.c)
DAEMON_LIB_SRC := daemon/store.c daemon/ckptfile.c daemon/launch.c daemon/evalstate.c
ADV_OBJ  := $(PROTO_SRC:%.c=$(BUILD)/%.o) $(DAEMON_LIB_SRC:%.c=$(BUILD)/%.o)
# The daemon's program: everything else in daemon/ (main, server, ...)
# but the MPI worker's main.
ADVD_SRC := $(filter-out $(DAEMON_LIB_SRC) daemon/worker_mpi.c,$(wildcard daemon/*.c))
ADVD_OBJ := $(ADVD_SRC:%.c=$(BUILD)/%.o)
# bin/advd-worker-mpi, the worker on the ranks of an Open MPI job (issue
# 13): built where Open MPI's pkg-config file is (make deps installs it;
# MPI=0 skips it). The daemon itself never links MPI.
MPI      ?= $(if $(shell pkg-config --exists ompi-c 2>/dev/null && echo y),1,0)
MPI_WORKER := $(if $(filter 1,$(MPI)),$(BIN)/advd-worker-mpi)
# The client, bin/advctl: proto/ for the protocol and job specs, libcore
# for reading checkpoints (export).
CLIENT_SRC := $(wildcard client/*.c)
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Shell tests: man pages, units, install, completion (no build of their own).
TEST_SH  := $(wildcard tests/test_*.sh)
# Fuzz harnesses, one per parser (tests/fuzz/; built and run further down).
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

.PHONY: all deps demo check check-asan bench clean
all: $(BIN)/advbench $(BIN)/advd $(BIN)/advctl $(BIN)/advload $(MPI_WORKER)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(wildcard core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# conv.c and gemm.c copy rows of 7 to 32 floats in loops; GCC would turn
# them into memcpy/memset calls, which cost more than the copies (GCC's
# flag: clang, for make fuzz, has no such pass).
$(BUILD)/core/conv.o $(BUILD)/core/gemm.o: override CFLAGS += \
    $(if $(findstring clang,$(CC)),,-fno-tree-loop-distribute-patterns)

$(BUILD)/libcore.a: $(CORE_OBJ)
	ar rcs $@ $^

# proto/ and the daemon's library parts (everything but its main); core/
# objects do not depend on their headers.
$(ADV_OBJ) $(ADVD_OBJ) $(TEST_SRC:%.c=$(BUILD)/%.o): $(wildcard proto/*.h daemon/*.h tests/*.h)
$(BUILD)/libadvd.a: $(ADV_OBJ)
	ar rcs $@ $^

$(BIN)/advbench: $(BUILD)/tools/advbench.o $(BUILD)/libcore.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ $(CORE_LIBS) -o $@

# The drift monitor's figures (README, "Using a model"): core only.
$(BIN)/driftfig: $(BUILD)/tools/driftfig.o $(BUILD)/libcore.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ $(CORE_LIBS) -o $@

# Plain sockets and strings: no library of ours.
$(BIN)/advload: $(BUILD)/tools/advload.o
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ -lpthread -o $@

$(BIN)/advd: $(ADVD_OBJ) $(BUILD)/libadvd.a $(BUILD)/libcore.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ $(ADV_LIBS) $(UV_LIBS) $(CORE_LIBS) -o $@

$(BUILD)/daemon/worker_mpi.o: override CFLAGS += $(shell pkg-config --cflags ompi-c 2>/dev/null)
# The worker's parts of the daemon, as an archive: the linker takes
# worker.o and what it calls, none of the event loop.
$(BUILD)/libadvdw.a: $(filter-out $(BUILD)/daemon/main.o,$(ADVD_OBJ))
	ar rcs $@ $^
$(BIN)/advd-worker-mpi: $(BUILD)/daemon/worker_mpi.o $(BUILD)/libadvdw.a $(BUILD)/libadvd.a \
                        $(BUILD)/libcore.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ $(shell pkg-config --libs ompi-c 2>/dev/null) $(ADV_LIBS) $(UV_LIBS) \
	    $(CORE_LIBS) -lpthread -o $@

$(CLIENT_OBJ): $(wildcard proto/*.h client/*.h)
$(BIN)/advctl: $(CLIENT_OBJ) $(BUILD)/libadvd.a $(BUILD)/libcore.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) $^ $(ADV_LIBS) $(CORE_LIBS) -o $@

# Every test links every library: the linker takes only what it uses.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libadvd.a $(BUILD)/libcore.a
	$(CC) $(LDFLAGS) $^ $(ADV_LIBS) $(CORE_LIBS) $(CHECK_LIBS) -o $@

# Each test file is its own Check program; all of them run even if one fails.
# test_daemon starts the advd of this build (ADV_BIN); test_advctl runs
# this build's advctl (ADVCTL_BIN) against it.
# CHECK_C_ONLY=1 (check-asan): the Check programs alone; the shell tests
# check files and scripts, the Python tests Python, and make fuzz replays
# the saved inputs under the sanitizers itself.
CHECK_C_ONLY ?= 0
CHECK_MORE := $(if $(filter 1,$(CHECK_C_ONLY)),,$(TEST_SH) $(FUZZ_BIN))
check: $(TEST_BIN) $(if $(filter 1,$(CHECK_C_ONLY)),,$(FUZZ_BIN)) $(BIN)/advd $(BIN)/advctl \
       $(MPI_WORKER)
	@fail=0; for t in $(TEST_BIN) $(CHECK_MORE); do \
	    echo "== $$t"; ADV_TEST_TMP=$${TMPDIR:-/tmp} ADV_BIN=$(BIN)/advd \
	    ADVCTL_BIN=$(BIN)/advctl ./$$t || fail=1; \
	done; \
	if [ "$(CHECK_C_ONLY)" != 1 ]; then \
	echo "== tests/python"; ADV_TEST_TMP=$${TMPDIR:-/tmp} ADV_BIN=$(BIN)/advd \
	ADVCTL_BIN=$(BIN)/advctl PYTHONDONTWRITEBYTECODE=1 \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python || fail=1; fi; \
	exit $$fail

# The report's test alone: `advctl report` of real jobs checked with tidy,
# then rendered by headless Chromium (both installed by deps.sh report).
.PHONY: check-browser
check-browser: $(BUILD)/tests/test_report $(BIN)/advd $(BIN)/advctl
	ADV_TEST_TMP=$${TMPDIR:-/tmp} ADV_BIN=$(BIN)/advd ADVCTL_BIN=$(BIN)/advctl \
	    ./$(BUILD)/tests/test_report

# check-asan: MPI=0, no MPI worker (test_mpi says it skips): Open MPI's
# own allocations are no business of the sanitizers. -O2, not -O1: the
# tests are numerical, and -O2's vectorised loops run them in two thirds
# of the time (test_train 25 s -> 14 s) with the same checks.
check-asan:
	$(MAKE) BUILD=build-asan BIN=build-asan/bin \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    CFLAGS="-O2 -g" CHECK_C_ONLY=1 MPI=0 check

# Fuzz harnesses (tests/fuzz/): each links FUZZ_MAIN, by default the
# replay driver tests/fuzz/replay.c, which make check runs over the saved
# inputs (tests/fuzz/corpus and regress). make fuzz builds them into
# build-fuzz/ with clang's libFuzzer instead and runs each for FUZZ_S
# seconds, FUZZ_JOBS at once (scripts/fuzz.sh prints the table).
FUZZ_MAIN ?= $(BUILD)/tests/fuzz/replay.o
FUZZ_S    ?= 60
FUZZ_JOBS ?= 1
$(FUZZ_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/fuzz/fuzz.o $(BUILD)/tests/fuzz/replay.o: \
    $(wildcard proto/*.h daemon/*.h tests/fuzz/*.h)
# The configuration file's parser is the daemon's (options.o), not a library's.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/fuzz.o $(FUZZ_MAIN) \
                 $(BUILD)/daemon/options.o $(BUILD)/libadvd.a $(BUILD)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(FUZZ_LINK) $^ $(ADV_LIBS) $(CORE_LIBS) -o $@

# The corpus's binary seeds, written from real files (tests/fuzz/seeds.c).
$(BUILD)/fuzz/seeds: $(BUILD)/tests/fuzz/seeds.o $(BUILD)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(CORE_LIBS) -o $@

.PHONY: fuzz fuzz-bin fuzz-seeds
fuzz-bin: $(FUZZ_BIN)
fuzz-seeds: $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/seeds tests/fuzz/corpus
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz BIN=build-fuzz/bin CC=clang CFLAGS="-O1 -g -Wno-pass-failed" \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    FUZZ_MAIN= FUZZ_LINK=-fsanitize=fuzzer fuzz-bin
	FUZZ_S=$(FUZZ_S) FUZZ_JOBS=$(FUZZ_JOBS) sh scripts/fuzz.sh build-fuzz/fuzz

bench: $(BIN)/advbench $(BIN)/advload $(BIN)/advd $(MPI_WORKER)
	sh scripts/bench.sh
	BIN=$(BIN) sh scripts/bench-load.sh
	$(if $(MPI_WORKER),BIN=$(BIN) sh scripts/bench-mpi.sh)

# 2 MPI ranks x 1 thread against 1 process x 2 threads (issue 13).
.PHONY: bench-mpi
bench-mpi: $(BIN)/advd $(MPI_WORKER)
	BIN=$(BIN) sh scripts/bench-mpi.sh

demo: all
	sh scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz bin

# ------------------------------------------------------------ install
# make install [PREFIX=/usr/local] [DESTDIR=]: scripts/install.sh holds the
# table of files (programs, man pages, completion, units, sysusers.d, the
# system config) and writes a manifest that make uninstall removes exactly.
# advd goes to sbin (advd(8)); a per-user daemon runs it by its full path
# or through the user unit. PREFIX=/usr puts the config in /etc.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
SYSTEMDSYSTEMUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSTEMDUSERUNITDIR ?= $(PREFIX)/lib/systemd/user
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# The version the man pages name and the package must carry.
VERSION    := $(shell sed -n 's/^\#define ADV_VERSION "\(.*\)"/\1/p' proto/proto.h)
INSTALL_VARS := DESTDIR PREFIX BINDIR SBINDIR SYSCONFDIR DATADIR MANDIR COMPLETIONDIR \
                SYSTEMDSYSTEMUNITDIR SYSTEMDUSERUNITDIR SYSUSERSDIR BIN VERSION
INSTALL_ENV   = $(foreach v,$(INSTALL_VARS),$(v)='$($(v))')

.PHONY: install uninstall deb
install: $(BIN)/advd $(BIN)/advctl
	@$(INSTALL_ENV) sh scripts/install.sh install

uninstall:
	@$(INSTALL_ENV) sh scripts/install.sh uninstall

# make deb: the advd and python3-advd packages (debian/), built from a copy
# of the tree in $(BUILD)/deb/src so the working tree stays clean; the
# .deb files land in $(BUILD)/deb/.
DEB_DIR := $(BUILD)/deb
deb:
	@d=$$(dpkg-parsechangelog -S Version); [ "$$d" = "$(VERSION)" ] || { \
	    echo "advd: debian/changelog is at $$d, proto/proto.h at $(VERSION): add an entry" \
	         "(dch -v $(VERSION))" >&2; exit 1; }
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	tar -c --exclude=./.git --exclude='./build*' --exclude=./bin --exclude=./debian/tmp \
	    --exclude=./debian/advd --exclude=./debian/python3-advd --exclude=./debian/.debhelper . | \
	    tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b
	lintian $(DEB_DIR)/*.changes
	@ls -1 $(DEB_DIR)/*.deb
endif
