# sdseg build. `make` builds the CLI, the CPU library and (when nvcc exists) the CUDA
# backend; `make test` runs the CPU suite; `make help` lists every target.

CC       ?= gcc
ARCH     ?= -march=native
PY       := /usr/bin/python3
BUILD    ?= build
SAN      ?=
CFLAGS   := -std=c11 -O3 $(ARCH) -fopenmp -Wall -Wextra -D_GNU_SOURCE -MMD -MP $(SAN) $(EXTRA_CFLAGS)
LDLIBS   := -ltiff -lm
LDFLAGS  := -fopenmp $(SAN)

# CUDA: compiled whenever nvcc exists, GPU or not.
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
GENCODE  := -gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 \
            -gencode arch=compute_86,code=sm_86 -gencode arch=compute_89,code=sm_89 \
            -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVFLAGS  := -O3 -std=c++17 $(GENCODE) -Xcompiler -fopenmp,-Wall -MMD -MP

LIB_SRC  := $(wildcard core/*.c ops/*.c cpu/*.c models/*.c) $(filter-out src/main.c,$(wildcard src/*.c))
F64_SRC  := $(wildcard core/*.c ops/*.c cpu/*.c)
CU_SRC   := $(wildcard gpu/*.cu)
OPTEST   := tests/op_harness.c tests/test_ops.c $(wildcard tests/cases_*.c)
UNIT_SRC := $(wildcard tests/t_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/f32/%.o)
F64_OBJ  := $(F64_SRC:%.c=$(BUILD)/f64/%.o) $(OPTEST:%.c=$(BUILD)/f64/%.o)
OPT_OBJ  := $(OPTEST:%.c=$(BUILD)/f32/%.o)
UNITS    := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)

ifneq ($(NVCC),)
CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/gpu/%.o)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublasLt -lcublas -lcudart -lstdc++
CFLAGS   += -DSDSEG_CUDA -I$(CUDA_HOME)/include
endif

.PHONY: all test asan deps demo clean help test-gpu bench-ops fuzz
# keep intermediate objects of the test binaries (no rebuilds on every make)
.SECONDARY:
all: $(BUILD)/sdseg $(BUILD)/test_ops $(BUILD)/test_ops_f64 $(UNITS) $(BUILD)/demo_overlay

$(BUILD)/f32/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/f64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSDSEG_DOUBLE -c $< -o $@

$(BUILD)/gpu/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/sdseg: $(BUILD)/f32/src/main.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/test_ops: $(OPT_OBJ) $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/test_ops_f64: $(F64_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/f32/tests/%.o $(LIB_OBJ) $(CU_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/bench_ops: $(BUILD)/f32/bench/bench_ops.o $(BUILD)/f32/bench/cpu_peak.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

$(BUILD)/bench_models: $(BUILD)/f32/bench/bench_models.o $(BUILD)/f32/bench/cpu_peak.o $(LIB_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LIBS)

# The three seed networks, training and inference throughput, peak RSS and utilisation,
# beside the same networks in PyTorch: reports/bench-cpu-<date>.{md,csv,png} (BENCH_QUICK=1:
# tiny sizes, a smoke test of the whole chain into build/bench-quick/).
.PHONY: bench-models
bench-models: $(BUILD)/bench_models
	BUILD=$(BUILD) PY=$(PY) sh bench/bench_models.sh

# CPU convolution benchmark on the seed U-Net's shapes, alternating with PyTorch shape by shape.
bench-ops: $(BUILD)/bench_ops
	$(PY) bench/torch_ops.py $(BUILD)/bench_ops $(BUILD)/bench_ops_vs_torch.csv

# ---------------------------------------------------------------- CUDA backend checks
# test_gpu_ops and bench_gpu link core/, ops/ and cpu/ without core/tiff.c (and so
# without libtiff), so that they also build on a GPU machine that lacks it.
HOST_OBJ := $(filter-out $(BUILD)/f32/core/tiff.o,$(patsubst %.c,$(BUILD)/f32/%.o,$(wildcard core/*.c ops/*.c cpu/*.c)))
GPU_TEST_OBJ := $(filter-out $(BUILD)/f32/tests/test_ops.o,$(OPT_OBJ)) $(BUILD)/f32/tests/test_gpu_ops.o
# test_gpu_seg: the segmentation trainer on both backends. models/ and src/ go in as an
# archive, so the link takes only what the trainer needs (no tiff) as src/ changes.
GPU_SEG_OBJ := $(BUILD)/f32/tests/test_gpu_seg.o $(BUILD)/gpu_seg_deps.a
$(BUILD)/gpu_seg_deps.a: $(filter $(BUILD)/f32/models/% $(BUILD)/f32/src/%,$(LIB_OBJ))
	rm -f $@ && $(AR) rcs $@ $^
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
COMPUTE_SANITIZER ?= $(shell command -v compute-sanitizer 2>/dev/null || echo $(CUDA_HOME)/bin/compute-sanitizer)
.PHONY: test-gpu-memcheck bench-gpu bench-models-gpu

ifneq ($(NVCC),)
all: $(BUILD)/test_gpu_ops $(BUILD)/bench_gpu $(BUILD)/test_gpu_seg

$(BUILD)/test_gpu_ops: $(GPU_TEST_OBJ) $(HOST_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lm $(CUDA_LIBS)

$(BUILD)/bench_gpu: $(BUILD)/gpu/bench/bench_gpu.o $(HOST_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lm $(CUDA_LIBS)

$(BUILD)/test_gpu_seg: $(GPU_SEG_OBJ) $(HOST_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lm $(CUDA_LIBS)

# Every operator on the GPU against the CPU reference, float32 and bf16-fast modes
# (prints "skipped" and succeeds where no GPU is usable).
# Then a few seed-recipe training steps of a tiny U-Net on both backends (losses within 1e-4).
test-gpu: $(BUILD)/test_gpu_ops $(BUILD)/test_gpu_seg
	$(BUILD)/test_gpu_ops
	$(BUILD)/test_gpu_seg

test-gpu-memcheck: $(BUILD)/test_gpu_ops
	$(COMPUTE_SANITIZER) --tool memcheck --leak-check full --error-exitcode 1 $(BUILD)/test_gpu_ops --seeds 1

# Kernel benchmark: CSV and gnuplot script into reports/, then the chart if gnuplot exists.
bench-gpu: $(BUILD)/bench_gpu
	@mkdir -p reports
	$(BUILD)/bench_gpu --out reports --commit $(COMMIT)
	@if command -v gnuplot >/dev/null; then for f in reports/bench-gpu-*.gp; do gnuplot "$$f" || exit 1; done; \
	else echo "gnuplot not found: render the chart later with gnuplot reports/bench-gpu-<device>.gp"; fi

# The seed networks on the GPU beside PyTorch (cuDNN, bf16 autocast, channels_last, eager and
# torch.compile) within BENCH_SECONDS (default 480): reports/bench-<gpu>-<date>.{md,csv,gp,png}.
# bench_models_gpu is bench_models linked as test_gpu_seg is (no libtiff, which GPU machines
# may lack); GPU_PY is the python3 with the GPU machine's PyTorch.
GPU_PY   ?= python3
$(BUILD)/bench_models_gpu: $(BUILD)/f32/bench/bench_models.o $(BUILD)/f32/bench/cpu_peak.o $(BUILD)/gpu_seg_deps.a \
                           $(HOST_OBJ) $(CU_OBJ)
	$(CC) $(LDFLAGS) $^ -o $@ -lm $(CUDA_LIBS)

bench-models-gpu: $(BUILD)/bench_models_gpu
	BUILD=$(BUILD) PY=$(GPU_PY) sh bench/bench_models_gpu.sh
else
test-gpu test-gpu-memcheck bench-gpu bench-models-gpu:
	@echo "$@: skipped (no nvcc, so no CUDA backend was built)"
endif

# The same comparison with the CUDA kernels run on CPU threads (tests/gpu_emu/), for
# machines without a GPU: every gpu/ operator file is compiled by g++ against the
# emulation's internal.h, kernel launches rewritten into emu_launch calls, cuBLAS and
# cuDNN replaced by reference implementations, all under ASan/UBSan. Needs only the CUDA
# headers. It checks the kernels' logic and memory accesses, not timing or real races.
EMU      := $(BUILD)/gpu_emu
EMU_CU   := $(filter-out gpu/backend.cu gpu/memory.cu,$(CU_SRC))
EMU_OBJ  := $(EMU_CU:gpu/%.cu=$(EMU)/%.o) $(EMU)/runtime.o
EMU_CXX  := $(CXX) -std=c++20 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -pthread -Wall -Wextra \
            -iquote $(CURDIR)/gpu -I$(CUDA_HOME)/include
EMU_LAUNCH := s/([A-Za-z_][A-Za-z0-9_]*(<[^<>;()]*>)?)<<<([^;]*)>>>\(([^;]*)\);/emu_launch(\3, [\&] { \1(\4); });/
.PHONY: test-gpu-emu

$(EMU)/src/%: gpu/%
	@mkdir -p $(dir $@)
	sed -E '$(EMU_LAUNCH)' $< > $@

$(EMU)/src/internal.h: tests/gpu_emu/internal.h
	@mkdir -p $(dir $@)
	cp $< $@

$(EMU)/%.o: $(EMU)/src/%.cu $(EMU)/src/internal.h $(EMU)/src/reduce.h
	$(EMU_CXX) -x c++ -c $< -o $@

$(EMU)/runtime.o: tests/gpu_emu/runtime.cpp tests/gpu_emu/internal.h
	@mkdir -p $(dir $@)
	$(EMU_CXX) -c $< -o $@

$(EMU)/test_gpu_ops: $(GPU_TEST_OBJ) $(HOST_OBJ) $(EMU_OBJ)
	$(CXX) -fsanitize=address,undefined -fopenmp -pthread $^ -o $@ -lm

$(EMU)/test_gpu_seg: $(GPU_SEG_OBJ) $(HOST_OBJ) $(EMU_OBJ)
	$(CXX) -fsanitize=address,undefined -fopenmp -pthread $^ -o $@ -lm

test-gpu-emu: $(EMU)/test_gpu_ops $(EMU)/test_gpu_seg
	$(EMU)/test_gpu_ops --seeds 1
	$(EMU)/test_gpu_seg

# The CPU test suite: operators (finite differences + PyTorch oracle), then every
# tests/t_*.c unit test and tests/t_*.sh command-line test.
test: all
	@BUILD=$(BUILD) PY=$(PY) sh tests/run.sh

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan ARCH="$(ARCH)" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -g" \
	    EXTRA_CFLAGS="-O1" NVCC= test

# libFuzzer harnesses for the TIFF and tile-dataset readers (clang 14); each runs
# FUZZ_SECONDS. The stack limit is lowered to stay inside the fuzzer's memory budget.
FUZZ_SECONDS ?= 600
FUZZ_CC   ?= clang
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -DTIFF_MAX_STACK_VALUES='(1L << 24)'
$(BUILD)/fuzz/fuzz_tiff: tests/fuzz_tiff.c core/tiff.c core/err.c core/fileio.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $^ -o $@ -ltiff -lm
$(BUILD)/fuzz/fuzz_tiles: tests/fuzz_tiles.c core/tiles.c core/loader.c core/augment.c core/err.c core/fileio.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -pthread $^ -o $@ -lm
fuzz: $(BUILD)/sdseg $(BUILD)/fuzz/fuzz_tiff $(BUILD)/fuzz/fuzz_tiles
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz.sh

# Debian packages the project needs (run as root, or with sudo available).
deps:
	sh tests/install-deps.sh

# The overlay picture of make demo (raw RGB for gnuplot); needs only the TIFF reader.
$(BUILD)/demo_overlay: $(BUILD)/f32/repro/overlay.o $(BUILD)/f32/core/tiff.o $(BUILD)/f32/core/err.o $(BUILD)/f32/core/fileio.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The README's first command: deps, build, then repro/demo.sh (a phantom, or DATA=/path/to/epfl).
# The build runs after deps (not beside it under -j): it needs the packages deps installs.
demo: deps
	$(MAKE) all
	BUILD=$(BUILD) sh repro/demo.sh $(if $(DATA),--data "$(DATA)")

help:
	@echo "make            build sdseg, the CPU library and the CUDA backend (if nvcc exists)"
	@echo "make test       CPU test suite (operators vs float64 finite differences and PyTorch)"
	@echo "make asan       the test suite under AddressSanitizer + UBSan"
	@echo "make deps       install the Debian packages (libtiff, gnuplot, python3-torch)"
	@echo "make demo       deps, build, train a small U-Net on a phantom (DATA=dir: EPFL stacks), build/demo/report.md"
	@echo "make fuzz       libFuzzer on the TIFF and tile readers, FUZZ_SECONDS each (default 600)"
	@echo "make bench-ops  CPU conv benchmark (seed U-Net shapes) vs PyTorch, CSV under build/"
	@echo "make bench-models  the three networks vs PyTorch on the CPU: reports/bench-cpu-<date>.md"
	@echo "make test-gpu   CUDA backend vs the CPU on every operator, float32 and bf16-fast (GPU needed)"
	@echo "make test-gpu-memcheck  the same under compute-sanitizer memcheck"
	@echo "make bench-gpu  CUDA kernel benchmark: CSV + gnuplot chart into reports/"
	@echo "make bench-models-gpu  the three networks vs PyTorch on the GPU: reports/bench-<gpu>-<date>.md"
	@echo "make test-gpu-emu  test-gpu with the CUDA kernels emulated on CPU threads (no GPU needed)"

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
