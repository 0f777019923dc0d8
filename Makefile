# Two entry points do all the set-up on a fresh machine:
#   make demo   installs everything into .venv and runs `python train.py` (the built-in demo)
#   make test   installs everything into .venv and runs the whole test suite
# CI also runs `make test-isa`: the tests that train, again under another instruction set.
# Both are idempotent: the install step reruns only when the packaging or C++/CUDA sources change.
# Versions come from constraints.txt; DALI=nvidia-dali-cuda130 picks the CUDA 13 flavour of DALI.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q -c constraints.txt
DALI   ?= nvidia-dali-cuda120
STAMP  := $(VENV)/.dali-cmo-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-isa build clean

install: $(STAMP)

# pyproject.toml's build requirements and DALI go in first: the package is then built in this
# venv (no build isolation), against the DALI it runs with.
$(STAMP): setup.cfg setup.py pyproject.toml build_backend.py constraints.txt $(wildcard dali_cmo/ops/csrc/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) setuptools nvidia-curand $(DALI)
	$(PIP) --no-build-isolation -e '.[test]'
	touch $@

demo: install
	$(PY) train.py

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Training arithmetic depends on the kernels a CPU gets (AVX2, AVX-512, AMX): a test that expects
# one machine's trajectory fails here, not on a user's machine.
test-isa: install
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest -q -m trains $(PYTEST_ARGS)

# Rebuild only the operator library (after editing dali_cmo/ops/csrc without reinstalling).
build: install
	$(PY) -m dali_cmo build

clean:
	rm -rf $(VENV) build dali_cmo/ops/lib *.egg-info
