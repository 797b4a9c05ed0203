# The README's two commands: `make demo` and `make test`. Both do all the setup they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FLEXSP := .build/release/flexsp
DATA := data/lengths
# The demo's training data: the bundled corpus prepared with the shipped tokenizer (generated,
# not committed; about a second).
DEMO_DATA := out/data/python-docstrings

.PHONY: bench-real demo test system-deps build build-debug venv test-swift test-python wheel bench clean

system-deps:
	@scripts/ensure-system-deps.sh

build: system-deps
	swift build -c release --product flexsp

# dist/flexsp-<version>-py3-none-manylinux_2_N_x86_64.whl: the runtime with the planner inside
# (static Swift standard library, CBC and CLP), for machines without Swift or COIN-OR.
wheel: system-deps venv
	$(PY) scripts/build-wheel.py

venv: $(VENV)/.installed
$(VENV)/.installed: python/pyproject.toml scripts/setup-venv.sh
	scripts/setup-venv.sh

test-swift: system-deps
	swift test

test-python: venv build wheel
	FLEXSP_BIN=$(abspath $(FLEXSP)) $(PY) -m pytest -q python/tests

test: test-swift test-python

$(DEMO_DATA)/meta.json: data/corpus/python-docstrings.txt data/tokenizer/tokenizer.json | venv
	$(PY) -m flexsp.prepare --tokenizer data/tokenizer \
	  --input data/corpus/python-docstrings.txt --out $(DEMO_DATA) --overwrite --quiet

demo: build venv $(DEMO_DATA)/meta.json
	$(FLEXSP) compare --model gpt-7b --cluster a100-40g-8x8 --max-context 384K \
	  --lengths $(DATA)/wikipedia-sample.txt --batch-size 512 --steps 10 \
	  --strategies flexsp,milp,batch-ada,static,megatron-dcp --milp-time-limit 5
	rm -rf out/demo
	FLEXSP_BIN=$(abspath $(FLEXSP)) OMP_NUM_THREADS=1 $(VENV)/bin/torchrun --standalone \
	  --nproc-per-node 4 -m flexsp.train --config configs/demo-cpu.yaml
	$(PY) -m flexsp.plot out/demo/metrics.jsonl --out out/demo/run.svg
	$(PY) scripts/demo-generate.py out/demo/model "Return the number of"

# The benchmarks (a package of their own under benchmarks/, never built by `make test`): regenerates
# benchmarks/REPORT.md and benchmarks/charts/. About 20-30 min on 2 cores; BENCH_FLAGS=--quick: 2-3 min.
bench: system-deps
	cd benchmarks && swift run -c release flexsp-bench $(BENCH_FLAGS)

clean:
	rm -rf .build $(VENV) dist

# Real execution (measured steps, not the simulator): strategies interleaved batch by batch on a
# long-tailed corpus, world 2 on CPU; REAL_FLAGS=--world 4 (oversubscribed here) or
# "--world 1 --versus-transformers". Figures in benchmarks/runtime/REAL_EXECUTION.md.
bench-real: build venv
	FLEXSP_BIN=$(abspath $(FLEXSP)) $(PY) benchmarks/runtime/real_execution.py --world 2 $(REAL_FLAGS)
