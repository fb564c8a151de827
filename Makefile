# `make demo` and `make test` work from a clean clone: they create .venv, install, run.
# Each extra set has a stamp file, so a repeated `make test` skips pip unless pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps

.PHONY: demo test bench bench-quick bench-scaling oracle install clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

# $(STAMPS)/<extras>.stamp: pip install -e .[<extras>] (extras comma-separated; "base" means none)
$(STAMPS)/%.stamp: pyproject.toml | $(VPY)
	@mkdir -p $(STAMPS)
	$(VPY) -m pip install -e ".$(if $(filter base,$*),,[$*])"
	@touch $@

install: $(STAMPS)/base.stamp

demo: $(STAMPS)/examples.stamp
	@if [ -f examples/digits_cnn.py ]; then \
		$(VPY) examples/digits_cnn.py; \
	else \
		$(VPY) examples/xor.py; \
	fi

test: $(STAMPS)/dev.stamp
	$(VPY) -m pytest $(PYTEST_ARGS)

oracle: $(STAMPS)/dev,oracle.stamp

bench: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks --quick

bench-scaling: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks --scaling

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
