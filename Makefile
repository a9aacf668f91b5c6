# healcat: two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch, when .venv has none (a GPU user installs their own CUDA build into .venv first): a wheel
# this machine already has (pip's find-links), else the CPU build from PyTorch's CPU index, never
# PyPI's multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --no-index --no-deps "$(TORCH_SPEC)" 2>/dev/null \
		|| $(PY) -m pip install -q --no-deps --index-url $(TORCH_CPU_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/healcat demo

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
