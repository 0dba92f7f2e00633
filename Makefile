# nascli developer targets. `make demo` and `make test` are the README's first two commands:
# each installs what it needs (torch pinned to 2.13.0: never let pip pick a newer, CUDA-sized torch).
PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install --quiet --disable-pip-version-check
EXTRAS ?= test,slurm,joblib

.PHONY: install demo test test-all bench-speed fmnist clean

install:
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e ".[$(EXTRAS)]"

demo: install
	nas search +experiment=demo

test: install
	$(PYTHON) -m pytest

test-all: install
	$(PYTHON) -m pytest -m "slow or not slow"

bench-speed: install
	$(PYTHON) scripts/bench_speed.py

# A CPU-sized NB201 DARTS search on real Fashion-MNIST (needs: apt-get install -y dataset-fashion-mnist)
fmnist: install
	nas search method=darts space=nb201 dataset=fashion_mnist +experiment=fmnist_cpu

clean:
	rm -rf build dist *.egg-info .pytest_cache
