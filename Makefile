# memwatch: `make` builds ./memwatch, `make test` runs every test,
# `make demo` profiles the bundled demo workload.
OUTPUT    := .output
CLANG     ?= clang
CC        ?= gcc
BPFTOOL   ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
PROTOC_C  ?= protoc-c
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VMLINUX   := vmlinux/$(ARCH)/vmlinux.h
LIBBPF_A  ?= $(firstword $(wildcard /usr/lib/$(shell $(CC) -dumpmachine)/libbpf.a /usr/lib64/libbpf.a /usr/lib/libbpf.a))
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
PREFIX    ?= /usr/local

CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS  += -Iinclude -Iuser -I$(OUTPUT) -D_GNU_SOURCE
LDLIBS    += $(LIBBPF_A) -lelf -ldw -lz -lprotobuf-c -lcapstone -lmicrohttpd -lgnutls -lyaml -lcrypt -lstdc++ -lpthread -lm

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
PROTO_C   := $(OUTPUT)/profile.pb-c.c
USER_SRCS := $(wildcard user/*/*.c)
USER_HDRS := $(wildcard user/*.h user/*/*.h user/inject/agent/*.h)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(USER_SRCS)) $(OUTPUT)/profile.pb-c.o \
	     $(OUTPUT)/user/inject/agent_blob.o
LIBMW     := $(OUTPUT)/libmemwatch.a

.PHONY: all clean install test unit e2e fuzz demo bench deps workloads FORCE
.SECONDARY:
all: memwatch $(OUTPUT)/bpf-insns.md $(OUTPUT)/layers.ok

deps:
	tools/deps.sh

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests:
	mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) include/memwatch.h $(VMLINUX) | $(OUTPUT)
	$(CLANG) -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Iinclude -I$(dir $(VMLINUX)) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

# Every BPF program's size, printed whenever an object changes, so that
# growth shows; README.md keeps the same table.
$(OUTPUT)/bpf-insns.md: $(BPF_OBJS) tools/bpf-insns.sh README.md
	tools/bpf-insns.sh --check README.md $(BPF_OBJS) | tee $@

# Which folder of user/ may include which (ARCHITECTURE.md), on every build.
$(OUTPUT)/layers.ok: tools/check-layers.py $(wildcard user/*.c user/*/*.[ch] user/*/*/*.[ch] user/*/README.md) | $(OUTPUT)
	$(PYTHON) tools/check-layers.py && touch $@

# Rewritten only when the version changes, so objects rebuild exactly then.
$(OUTPUT)/version.h: FORCE | $(OUTPUT)
	@echo '#define MW_VERSION "$(VERSION)"' > $@.tmp; cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp
FORCE:

$(OUTPUT)/profile.pb-c.c $(OUTPUT)/profile.pb-c.h: proto/profile.proto | $(OUTPUT)
	$(PROTOC_C) --proto_path=proto --c_out=$(OUTPUT) $<

$(OUTPUT)/profile.pb-c.o: $(OUTPUT)/profile.pb-c.c
	$(CC) $(CPPFLAGS) -O2 -g -c $< -o $@

$(OUTPUT)/user/%.o: user/%.c $(USER_HDRS) include/memwatch.h $(SKELS) $(OUTPUT)/profile.pb-c.h $(OUTPUT)/version.h \
		   $(OUTPUT)/agent/agent_syms.h | $(OUTPUT)/user
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The in-process agent (user/inject/agent): freestanding, position
# independent, linked to an ELF whose file is its memory image, which
# memwatch embeds and maps into targets. Only PC-relative relocations are
# allowed: it runs at any address without a loader.
AGENT_DIR    := user/inject/agent
AGENT_CFLAGS := -ffreestanding -nostdlib -fPIC -fno-stack-protector -O2 -fasynchronous-unwind-tables \
		-mgeneral-regs-only -fcf-protection=none -fno-jump-tables -fvisibility=hidden \
		-fno-builtin -std=gnu11 -Wall -Wextra -Werror -Iinclude -Iuser
AGENT_DEPS   := $(wildcard $(AGENT_DIR)/*) include/memwatch.h

$(OUTPUT)/agent/%.o: $(AGENT_DIR)/%.c $(AGENT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

$(OUTPUT)/agent/%.o: $(AGENT_DIR)/%.S $(AGENT_DEPS)
	@mkdir -p $(dir $@)
	$(CC) -Iinclude -Iuser -c $< -o $@

$(OUTPUT)/agent/agent.elf: $(OUTPUT)/agent/stubs.o $(OUTPUT)/agent/agent.o $(AGENT_DIR)/agent.lds
	@bad=$$(readelf -rW $(filter %.o,$^) | awk '/R_X86_64_/ && $$3 !~ /^R_X86_64_(PC32|PLT32)$$/ {print $$3}' | sort -u); \
	if [ -n "$$bad" ]; then echo "agent: relocations that need a loader: $$bad" >&2; exit 1; fi
	$(LD) -static -nostdlib --orphan-handling=error -T $(AGENT_DIR)/agent.lds $(filter %.o,$^) -o $@

# Offsets of the agent's symbols in an instance (the ELF maps from offset 0).
$(OUTPUT)/agent/agent_syms.h: $(OUTPUT)/agent/agent.elf
	nm $< | awk '$$3 ~ /^mwa_/ { printf "#define SYM_%s 0x%sull\n", $$3, $$1 }' > $@.tmp && mv $@.tmp $@

$(OUTPUT)/user/inject/agent_blob.o: user/inject/agent_blob.S $(OUTPUT)/agent/agent.elf
	@mkdir -p $(dir $@)
	$(CC) -Wa,-I$(OUTPUT)/agent -c $< -o $@

$(LIBMW): $(USER_OBJS)
	rm -f $@ && ar rcs $@ $^

memwatch: $(OUTPUT)/user/main.o $(LIBMW)
	$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

install: memwatch $(OUTPUT)/bpf-insns.md $(OUTPUT)/layers.ok
	install -D -m 0755 memwatch $(DESTDIR)$(PREFIX)/bin/memwatch

# Unit tests: tests/unit/test_*.c, each linked against the library and cmocka.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))
$(OUTPUT)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(LIBMW) | $(OUTPUT)/tests
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(LIBMW) $(LDLIBS) -lcmocka -o $@

$(OUTPUT)/tests/test_unwind $(OUTPUT)/tests/test_unwind_fast: CFLAGS += -fomit-frame-pointer
$(OUTPUT)/tests/test_unwind $(OUTPUT)/tests/test_unwind_fast: tests/unit/fixtures/unwind_capture.h \
	tests/unit/fixtures/unwind_lib.c tests/unit/fixtures/unwind_cxx.cc

$(OUTPUT)/churn: tools/churn.c | $(OUTPUT)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -pthread $< -o $@

# churn with jemalloc linked dynamically, and statically (no libjemalloc file
# to name it): built like tests/workloads' gt-jemalloc and gt-jemalloc-static.
JEMALLOC_PIC := /usr/lib/$(shell $(CC) -dumpmachine)/libjemalloc_pic.a
CHURNS := $(OUTPUT)/churn $(OUTPUT)/churn-jemalloc-linked $(OUTPUT)/churn-jemalloc-static

$(OUTPUT)/churn-jemalloc-linked: tools/churn.c | $(OUTPUT)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -pthread $< -o $@ -ljemalloc

$(OUTPUT)/churn-jemalloc-static: tools/churn.c | $(OUTPUT)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -pthread $< $(JEMALLOC_PIC) -o $@ -lstdc++ -ldl -lm

# The unwinder's speed, fast path vs libdwfl: like a Debian binary, no frame pointers.
$(OUTPUT)/bench-unwind: tools/bench-unwind.c tests/unit/fixtures/unwind_capture.h $(LIBMW)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fomit-frame-pointer $< $(LIBMW) $(LDLIBS) -o $@

$(OUTPUT)/faulter: tools/faulter.c tests/workloads/common.h | $(OUTPUT)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Itests/workloads $< -o $@

# Workloads the tests and benchmarks run: tests/workloads/Makefile.
workloads:
	$(MAKE) -C tests/workloads

unit: $(UNIT_BINS) workloads
	$(PYTHON) tools/check-layers.py --self-test
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Fuzzing: each tests/fuzz/fuzz_*.c is a libFuzzer target, linked with
# memwatch's sources built again by clang with AddressSanitizer and
# UndefinedBehaviorSanitizer; `make fuzz` runs each for FUZZ_SECONDS from
# its seeds (tests/fuzz/NAME/), new inputs going to .output/fuzz/corpus/.
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(OUTPUT)/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS := $(patsubst user/%.c,$(OUTPUT)/fuzz/obj/%.o,$(USER_SRCS)) $(OUTPUT)/fuzz/obj/profile.pb-c.o

$(OUTPUT)/fuzz/obj/%.o: user/%.c $(wildcard user/*/*.h) include/memwatch.h $(SKELS) $(OUTPUT)/profile.pb-c.h $(OUTPUT)/version.h
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) -std=gnu11 $(FUZZ_CFLAGS) -c $< -o $@

$(OUTPUT)/fuzz/obj/profile.pb-c.o: $(OUTPUT)/profile.pb-c.c
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(OUTPUT)/fuzz/libmemwatch.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^

$(OUTPUT)/fuzz/%: tests/fuzz/%.c $(OUTPUT)/fuzz/libmemwatch.a
	$(CLANG) $(CPPFLAGS) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined $< $(OUTPUT)/fuzz/libmemwatch.a \
		$(LDLIBS) -o $@

fuzz: $(FUZZ_BINS)
	@set -e; for bin in $(FUZZ_BINS); do name=$$(basename $$bin); \
		mkdir -p $(OUTPUT)/fuzz/corpus/$$name; echo "== $$name ($(FUZZ_SECONDS) s)"; \
		$$bin -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(OUTPUT)/fuzz/ $(OUTPUT)/fuzz/corpus/$$name tests/fuzz/$$name; done

# Debian's python3: the tests use modules from Debian packages (python3-pil).
PYTHON ?= /usr/bin/python3

e2e: memwatch workloads $(CHURNS)
	$(PYTHON) tests/e2e/run.py $(E2E_ARGS)

test:
	tools/deps.sh
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) e2e

demo:
	tools/deps.sh
	$(MAKE) all workloads
	tools/demo.sh

bench: memwatch workloads
	tools/bench.sh

clean:
	rm -rf $(OUTPUT) memwatch
	$(MAKE) -C tests/workloads clean
