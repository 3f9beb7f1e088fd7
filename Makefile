# The two commands of the README:
#   make demo   installs what is missing, builds, runs the flagship example
#   make test   installs what is missing, builds, runs the whole test suite,
#               then again under AddressSanitizer + UndefinedBehaviorSanitizer,
#               then a short run of every fuzzer (tests/fuzz/run.sh)
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 15

.PHONY: all deps build demo test test-fast test-asan test-fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	bash examples/demo.sh $(BUILD)/gattnc

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGAT_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS)

# libFuzzer targets (clang, ASan+UBSan): FUZZ_SECONDS of fuzzing each, regressions replayed
test-fuzz: deps
	FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) bash tests/fuzz/run.sh $(FUZZ_SECONDS)

test: test-fast test-asan test-fuzz

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
