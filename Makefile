# `make demo` and `make test` work from a clean clone: they create .venv, install, run.
# Each extra set has a stamp file, so a repeated `make test` skips pip unless pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps

.PHONY: demo test bench bench-quick bench-scaling bench-ddp oracle ddp-demo install clean

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

# EXTRAS: the extra sets installed before the tests (CI adds the optional groups: .ci/run)
EXTRAS ?= dev
# one pytest worker per core when pytest-xdist is installed (the dev extra brings it): the suite's ~6 minutes take ~4
# on 2 cores; tests write only into their own temporary directories and listen on no fixed port, so workers share
# nothing. (Evaluated when the recipe runs, after the venv exists; without xdist, one process.)
PYTEST_ARGS ?= $(shell $(VPY) -c "import xdist" 2>/dev/null && printf '%s' '-n auto')
test: $(STAMPS)/$(EXTRAS).stamp
	$(VPY) -m pytest $(PYTEST_ARGS)

oracle: $(STAMPS)/dev,oracle.stamp

# examples/digits_ddp.py on 2 MPI ranks (the `distributed` extra brings mpi4py and MPICH's mpiexec)
ddp-demo: $(STAMPS)/examples,distributed.stamp
	$(VENV)/bin/mpiexec -n 2 $(VPY) examples/digits_ddp.py

bench: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks --quick

bench-ddp: $(STAMPS)/distributed.stamp
	$(VPY) -m benchmarks.ddp --write

bench-scaling: $(STAMPS)/base.stamp
	$(VPY) -m benchmarks --scaling

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
