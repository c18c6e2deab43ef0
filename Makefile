# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# bpf/%.bpf.c -> $(BUILD)/%.bpf.o -> $(BUILD)/%.skel.h -> userspace binaries.
# BUILD may be set per worker (make BUILD=build-foo) so parallel builds never
# share an output tree.

BUILD      ?= build
CLANG      ?= clang
BPFTOOL    ?= bpftool
CC         ?= cc
ARCH       := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

WARN       := -Wall -Wextra -Werror
CFLAGS     ?= -O2 -g
CFLAGS     += $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuserspace/lib -I$(BUILD) \
              -DFERRY_VERSION='"$(VERSION)"'
LDLIBS     := -lbpf -lelf -lz -ljson-c -lssl -lcrypto -lmnl -lpthread
BPF_CFLAGS := -target bpf -mcpu=v3 -O2 -g $(WARN) -Wno-unused-function -D__TARGET_ARCH_$(ARCH) \
              -Iinclude -Ibpf -Ivmlinux/$(ARCH)

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
BPF_HDRS   := $(wildcard bpf/lib/*.h) $(wildcard include/ferry/*.h)

LIB_SRCS   := $(wildcard userspace/lib/*.c)
LIB_OBJS   := $(patsubst userspace/lib/%.c,$(BUILD)/obj/lib/%.o,$(LIB_SRCS))
LIB_HDRS   := $(wildcard userspace/lib/*.h) $(wildcard include/ferry/*.h)
LIBFERRY   := $(BUILD)/libferry.a

FERRYD_SRCS := $(wildcard userspace/ferryd/*.c)
FERRYD_OBJS := $(patsubst userspace/ferryd/%.c,$(BUILD)/obj/ferryd/%.o,$(FERRYD_SRCS))
CTL_SRCS    := $(wildcard tools/ferryctl/*.c)
CTL_OBJS    := $(patsubst tools/ferryctl/%.c,$(BUILD)/obj/ferryctl/%.o,$(CTL_SRCS))
BENCH_SRCS  := $(wildcard tools/bench/*.c)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BPFT_SRCS   := $(wildcard tests/bpf/test_*.c)
BPFT_BINS   := $(patsubst tests/bpf/%.c,$(BUILD)/tests/%,$(BPFT_SRCS))
HELPER_SRCS := $(wildcard tests/integration/*.c)
HELPER_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(HELPER_SRCS))
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
# libFuzzer, with the library built again under ASan and UBSan (clang only).
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
               $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuserspace/lib

.PHONY: all deps vmlinux clean check unit demo bench fuzz check-sanitize install image test-bins
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BUILD)/ferryd $(BUILD)/ferryctl $(BUILD)/ferry-bench

# Debian packages needed to build and test; quiet when all are present.
DEPS := clang llvm libbpf-dev libelf-dev zlib1g-dev libssl-dev libmnl-dev libjson-c-dev \
        libcmocka-dev libclang-rt-dev bpftool iproute2 iptables pkg-config make gcc prometheus curl jq procps python3 python3-yaml
deps:
	@missing=""; for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >$(BUILD).deps.log 2>&1 \
	    || { cat $(BUILD).deps.log; exit 1; }; \
	fi

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/$(ARCH)/vmlinux.h

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/obj/lib/%.o: userspace/lib/%.c $(LIB_HDRS) | $(BUILD)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBFERRY): $(LIB_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/obj/ferryd/%.o: userspace/ferryd/%.c $(SKELS) $(LIB_HDRS) $(wildcard userspace/ferryd/*.h) | $(BUILD)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iuserspace/ferryd -c $< -o $@

$(BUILD)/ferryd: $(FERRYD_OBJS) $(LIBFERRY)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/obj/ferryctl/%.o: tools/ferryctl/%.c $(LIB_HDRS) $(wildcard tools/ferryctl/*.h) | $(BUILD)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itools/ferryctl -c $< -o $@

$(BUILD)/ferryctl: $(CTL_OBJS) $(LIBFERRY)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/ferry-bench: $(BENCH_SRCS) $(LIBFERRY) $(SKELS)
	$(CC) $(CFLAGS) $(BENCH_SRCS) $(LIBFERRY) $(LDLIBS) -o $@

# test_reconcile watches the library's map writes (xsvc_sync_filter_order),
# test_bpf_decap map_set_sync()'s (adds before deletes).
$(BUILD)/tests/test_reconcile: TEST_LDFLAGS := -Wl,--wrap=bpf_map_update_elem
$(BUILD)/tests/test_bpf_decap: TEST_LDFLAGS := -Wl,--wrap=bpf_map_update_elem,--wrap=bpf_map_delete_elem

# test_health runs ferryd's prober (health.c) on a clock of its own and
# records the outcome of every probe it feeds the state machine.
$(BUILD)/tests/test_health: TEST_OBJS := $(BUILD)/obj/ferryd/health.o
$(BUILD)/tests/test_health: TEST_LDFLAGS := -Wl,--wrap=clock_gettime,--wrap=hstate_update
$(BUILD)/tests/test_health: $(BUILD)/obj/ferryd/health.o

$(BUILD)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(LIBFERRY)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(TEST_OBJS) $(LIBFERRY) $(LDLIBS) -lcmocka $(TEST_LDFLAGS) -o $@

$(BUILD)/tests/test_%: tests/bpf/test_%.c $(wildcard tests/bpf/*.h) $(LIBFERRY) $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/bpf $< $(LIBFERRY) $(LDLIBS) $(TEST_LDFLAGS) -o $@

# bench_xdp.sh's stand-in for Katran's balancer (ferry-bench xdp-ns --peer-obj): the peer
# model with Katran's map and program names, so the harness's load-by-name path is tested
# without Katran's code. Only the definitions and references are renamed (&name, } name SEC),
# never the struct tags of the same spelling.
KATRAN_SED := -e 's/(&|\} )peer_vip_map\b/\1vip_map/g' -e 's/(&|\} )peer_lru_map\b/\1lru_mapping/g' \
              -e 's/(&|\} )peer_reals\b/\1reals/g' -e 's/(&|\} )peer_ch_rings\b/\1ch_rings/g' \
              -e 's/(&|\} )peer_ctl\b/\1ctl_array/g' -e 's/(&|\} )peer_stats\b/\1stats/g' \
              -e 's/^int bench_peer\(/int balancer_ingress(/'
TEST_BPF_OBJS := $(BUILD)/tests/peer_as_katran.bpf.o
$(BUILD)/tests/peer_as_katran.bpf.o: bpf/xdp_bench.bpf.c $(BPF_HDRS)
	@mkdir -p $(@D)
	sed -E $(KATRAN_SED) $< > $(@:.o=.c)
	$(CLANG) $(BPF_CFLAGS) -c $(@:.o=.c) -o $@

$(BUILD)/tests/%: tests/integration/%.c $(LIBFERRY) $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< $(LIBFERRY) $(LDLIBS) -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(LIB_HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) $< $(LIB_SRCS) $(LDLIBS) -o $@

$(BUILD):
	@mkdir -p $@

# The embedded default: ferryd in a throw-away cgroup + netns balancing a client.
demo: deps
	@$(MAKE) --no-print-directory all $(HELPER_BINS)
	BUILD=$(BUILD) bash tools/demo.sh

# Every test; the last line is "N passed, N failed, N skipped".
# What the tests run, in $(BUILD); the fuzz targets are built sanitized whatever CFLAGS say, so
# make check builds and runs them and make check-sanitize does not run them again.
test-bins: all $(UNIT_BINS) $(BPFT_BINS) $(HELPER_BINS) $(BPF_OBJS) $(TEST_BPF_OBJS)

check: deps
	@$(MAKE) --no-print-directory test-bins $(FUZZ_BINS)
	BUILD=$(BUILD) bash tests/run.sh

# Every test again with ferryd, ferryctl, the library and the tests built
# with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, in
# $(BUILD)-san. Each process writes any report to a file (a daemon's stderr
# goes to a test's log, which nobody reads when the test passes): a report
# from any process fails the run, as a failed test does. Not alignment: the
# tests build packets at Ethernet offsets and read them as structs, as the
# kernel does. abort_on_error: a report ends the process with SIGABRT, whose
# handler removes a test's pin directory (a plain _exit() would leave it).
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize=alignment -fno-sanitize-recover=undefined -Wno-format-truncation
check-sanitize: deps
	@rm -rf $(BUILD)-san.reports && mkdir -p $(BUILD)-san.reports
	@CFLAGS="$(SAN_FLAGS)" $(MAKE) --no-print-directory BUILD=$(BUILD)-san CC=gcc test-bins
	@ASAN_OPTIONS=log_path=$(CURDIR)/$(BUILD)-san.reports/asan:abort_on_error=1 \
	UBSAN_OPTIONS=log_path=$(CURDIR)/$(BUILD)-san.reports/ubsan:print_stacktrace=1:abort_on_error=1 \
	FERRY_TEST_FUZZ=0 BUILD=$(BUILD)-san bash tests/run.sh; rc=$$?; \
	if [ -n "$$(ls $(BUILD)-san.reports)" ]; then \
		echo "sanitizer reports ($(BUILD)-san.reports):"; head -n 40 $(BUILD)-san.reports/*; exit 1; \
	else echo "sanitizers: no reports"; fi; exit $$rc

# The fuzz targets for longer (FERRY_FUZZ_SECONDS each, 300 unless set);
# make check runs them for a fixed number of inputs.
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	BUILD=$(BUILD) FERRY_FUZZ_SECONDS=$${FERRY_FUZZ_SECONDS:-300} bash tests/fuzz/run.sh

bench: deps
	@$(MAKE) --no-print-directory all $(HELPER_BINS)
	BUILD=$(BUILD) bash tools/bench/run.sh

# ferryd and ferryctl into $(DESTDIR)$(PREFIX)/bin, as an image wants them
# (deploy/kubernetes/ferry-daemonset.yaml runs /usr/bin/ferryd).
PREFIX ?= /usr/local
install: $(BUILD)/ferryd $(BUILD)/ferryctl
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/ferryd $(BUILD)/ferryctl $(DESTDIR)$(PREFIX)/bin/

# The node image (deploy/Dockerfile), then run as the DaemonSet runs it (tools/image-check.sh:
# a child cgroup and pin dir of its own). IMAGE_BASE: any Debian 12 image; IMAGE_BUILD_FLAGS:
# extra `docker build` flags (--network host where the daemon gives builds no network).
IMAGE             ?= ferry/ferryd:$(VERSION)
IMAGE_BASE        ?= debian:12
IMAGE_BUILD_FLAGS ?=
image:
	docker build -f deploy/Dockerfile --build-arg BASE=$(IMAGE_BASE) --build-arg VERSION=$(VERSION) \
		$(IMAGE_BUILD_FLAGS) -t $(IMAGE) .
	bash tools/image-check.sh $(IMAGE)

clean:
	rm -rf $(BUILD)
