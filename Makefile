# nascli developer targets. `make demo` and `make test` are the README's first two commands. Each creates the
# project virtual environment $(VENV) (so a system Python that refuses `pip install`, PEP 668, is never
# touched), installs what its target needs with the exact versions of constraints.txt (torch 2.13.0: pip
# never picks a newer, CUDA-sized torch), then runs. Re-running skips the install while pyproject.toml and
# constraints.txt are unchanged (a stamp file per target in $(VENV)).
#
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu    # CPU-only torch build (Linux)
#   make test VENV=/tmp/fresh-venv                                 # a brand-new environment (what .ci/run does)
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
TORCH_INDEX ?=
DEMO_EXTRAS = plots,sr,speech,tensorboard
TEST_EXTRAS = test,plots,nb301,slurm,joblib,sr,speech,export,tensorboard,rl

VPY = $(VENV)/bin/python
PIP_INSTALL = $(VPY) -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS)

.PHONY: venv espeak-ng demo test test-all bench-speed fmnist clean

# The environment. Debian/Ubuntu ship the venv module separately (python3.X-venv): installed here when we
# are root with apt-get, otherwise one line says what to install.
$(VPY):
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  pkg=python$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "nascli: installing $$pkg (apt-get) for '$(PYTHON) -m venv'"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null || exit 1; \
	  else \
	    echo "nascli: '$(PYTHON) -m venv' needs the venv module: install it (Debian/Ubuntu: sudo apt-get install $$pkg) and re-run"; \
	    exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)

venv: $(VPY)

# The speech synthesiser of task=speech_recognition's offline dataset (spoken_digits): a system package,
# installed like the venv module above when we are root with apt-get, otherwise one line says what to install
# (the speech tests that need it are then skipped with that reason).
espeak-ng:
	@if ! command -v espeak-ng >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "nascli: installing espeak-ng (apt-get) for dataset=spoken_digits"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null || exit 1; \
	  else \
	    echo "nascli: dataset=spoken_digits needs espeak-ng: install it (Debian/Ubuntu: sudo apt-get install espeak-ng)"; \
	  fi; \
	fi

$(VENV)/.installed-demo: EXTRAS = $(DEMO_EXTRAS)
$(VENV)/.installed-test: EXTRAS = $(TEST_EXTRAS)
$(VENV)/.installed-demo $(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(VPY)
	$(PIP_INSTALL) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"
	@touch $@

demo: $(VENV)/.installed-demo | espeak-ng
	$(VENV)/bin/nas search +experiment=demo

# -rs: every skipped test says why. pytest's exit status is make's (5, no tests collected, fails too).
# -n: pytest-xdist workers, one per core this process may use (its CPU affinity), at most 4; each worker and
# the `nas` processes its tests start run one torch thread (tests/conftest.py). `make test TEST_WORKERS=0`
# runs in one process. --dist worksteal: an idle worker takes tests queued for a busy one.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(4, len(os.sched_getaffinity(0))))' 2>/dev/null || echo 1)
PYTEST = $(VPY) -m pytest -rs -n $(TEST_WORKERS) --dist worksteal --durations=15

test: $(VENV)/.installed-test | espeak-ng
	$(PYTEST)

test-all: $(VENV)/.installed-test | espeak-ng
	$(PYTEST) -m "slow or not slow"

bench-speed: $(VENV)/.installed-demo
	$(VPY) scripts/bench_speed.py

# A CPU-sized NB201 DARTS search on real Fashion-MNIST (needs: apt-get install -y dataset-fashion-mnist)
fmnist: $(VENV)/.installed-demo
	$(VENV)/bin/nas search method=darts space=nb201 dataset=fashion_mnist +experiment=fmnist_cpu

clean:
	rm -rf build dist *.egg-info .pytest_cache
