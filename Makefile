# Two commands set up a fresh machine: `make demo` and `make test`.
# Both create .venv on first use; later runs skip the install unless
# pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU builds of the three backends. torch is pinned: an unpinned torch pulls
# a CUDA build of several GB.
BACKENDS := tensorflow-cpu==2.21.0 torch==2.13.0 jax jaxlib
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

.PHONY: install test test-tensorflow test-jax test-torch test-backends test-applications test-slow demo bench gpu-smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]" $(BACKENDS)
	$(PY) -m pip install -q --no-deps quantus==0.6.0
	touch $(STAMP)

# The whole suite on TensorFlow; the suites marked `multibackend`
# (gradients, attributions, double backprop) on JAX and PyTorch too.
test: test-tensorflow test-jax test-torch

test-tensorflow: install
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not slow and not applications"

test-jax: install
	KERAS_BACKEND=jax $(PYTEST) -m "multibackend and not slow and not applications"

test-torch: install
	KERAS_BACKEND=torch $(PYTEST) -m "multibackend and not slow and not applications"

# Backend-independent logic (batching, metrics drawn with NumPy, the model
# zoo, the comparison job end to end) checked on JAX and PyTorch too; the
# parity test already compares the backends' metric values side by side in
# `make test`. CI runs it after `make test`.
test-backends: install
	KERAS_BACKEND=jax $(PYTEST) -m "backends_in_ci and not slow and not applications"
	KERAS_BACKEND=torch $(PYTEST) -m "backends_in_ci and not slow and not applications"

# Real architectures (keras.applications with weights=None, flat and nested,
# frozen and not): every one on TensorFlow, the ones also marked
# `multibackend` on JAX and PyTorch. CI runs it after `make test`.
test-applications: install
	KERAS_BACKEND=tensorflow $(PYTEST) -m applications
	KERAS_BACKEND=jax $(PYTEST) -m "applications and multibackend"
	KERAS_BACKEND=torch $(PYTEST) -m "applications and multibackend"

# Paper reproductions at small scale (minutes each); CI runs them after `make test`.
test-slow: install
	KERAS_BACKEND=tensorflow $(PYTEST) -m slow -s

demo: install
	KERAS_BACKEND=tensorflow $(VENV)/bin/keras-interp compare --quick --out demo_out

bench: install
	KERAS_BACKEND=tensorflow $(PY) benchmarks/attribution.py
	for b in tensorflow jax torch; do KERAS_BACKEND=$$b $(PY) benchmarks/training.py; done
	for b in tensorflow jax torch; do KERAS_BACKEND=$$b $(PY) benchmarks/atex.py; done

# benchmarks/gpu.sh on tiny settings, PyTorch only (the quickest to start):
# checks that the GPU script runs; its figures mean nothing.
gpu-smoke: install
	PYTHON=$(PY) benchmarks/gpu.sh --smoke --backends torch --out gpu_smoke

clean:
	rm -rf $(VENV) demo_out gpu_smoke gpu_results
