PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --no-deps 'torch-fidelity>=0.3'  # without torchvision: pyproject.toml
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gansweep demo --out demo-output

# Two workers on 2 cores: one worker leaves a core idle most of the time (single-threaded
# training, Ray starting up); a test file stays on one worker so its sweeps and servers start once.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 tests

clean:
	rm -rf $(VENV) demo-output
