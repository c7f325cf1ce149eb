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

.PHONY: all test asan deps demo clean help test-gpu bench-ops
all: $(BUILD)/sdseg $(BUILD)/test_ops $(BUILD)/test_ops_f64 $(UNITS)

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

# The CPU test suite: operators (finite differences + PyTorch oracle), then every
# tests/t_*.c unit test and tests/t_*.sh command-line test.
test: all
	@BUILD=$(BUILD) PY=$(PY) sh tests/run.sh

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan ARCH="$(ARCH)" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -g" \
	    EXTRA_CFLAGS="-O1" NVCC= test

# Debian packages the project needs (run as root, or with sudo available).
deps:
	sh tests/install-deps.sh

help:
	@echo "make            build sdseg, the CPU library and the CUDA backend (if nvcc exists)"
	@echo "make test       CPU test suite (operators vs float64 finite differences and PyTorch)"
	@echo "make asan       the test suite under AddressSanitizer + UBSan"
	@echo "make deps       install the Debian packages (libtiff, gnuplot, python3-torch)"

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
