# csdkit developer entry points. `make demo` and `make test` work on a fresh machine: they create
# .venv if missing, install torch only if none is importable, build and install csdkit, then run.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
TORCH_SPEC ?= torch==2.13.0
CSDKIT_CUDA ?= AUTO
export CSDKIT_CUDA
RUN_DIR ?= runs/demo
DEMO_PROMPT ?= a blue cylinder

.PHONY: all venv tools browser-deps build test test-cpp test-py lint demo bench clean

all: build

# ---- environment ------------------------------------------------------------------------------
$(VENV)/.deps-stamp: pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@$(VPY) -c "import torch" 2>/dev/null || { echo "installing $(TORCH_SPEC) (CPU build here; GPU users: install your CUDA torch first)"; $(PIP) install -q "$(TORCH_SPEC)"; }
	@$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=3" ninja
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q "cmake>=3.24"
	@$(PIP) install -q numpy "diffusers>=0.27" "transformers>=4.38" "safetensors>=0.4" "trimesh>=4.0" \
		"xatlas>=0.0.9" "pillow>=9.0" "tqdm>=4.60" "pytest>=7" "hypothesis>=6" "ruff>=0.5" \
		"import-linter>=2.1" "DracoPy>=1.4" "selenium>=4.11" "ray>=2.9"
	@touch $@

venv: $(VENV)/.deps-stamp

# Third-party tools some tests use (they skip without them): glTF-Transform's CLI writes the Draco /
# quantized / meshopt glTF files of tests/test_gltf_third_party.py. Needs npm (the npm registry).
GLTF_TRANSFORM := build/npm/node_modules/.bin/gltf-transform
$(GLTF_TRANSFORM):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix build/npm "@gltf-transform/cli@4" || \
		echo "note: could not install @gltf-transform/cli; its tests will skip"; \
	else echo "note: npm not found; tests/test_gltf_third_party.py will skip"; fi

tools: $(GLTF_TRANSFORM)

# The browser tests (tests/test_viewer_browser.py, tests/test_viewer_js.py) use Debian's chromium and
# chromium-driver and node; installed here when missing (as root), never downloaded by a test.
BROWSER_PKGS = $(if $(wildcard /usr/bin/chromium),,chromium) $(if $(wildcard /usr/bin/chromedriver),,chromium-driver) \
	$(if $(shell command -v node 2>/dev/null),,nodejs)
browser-deps:
	@pkgs="$(strip $(BROWSER_PKGS))"; \
	if [ -z "$$pkgs" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $$pkgs (Debian packages, for the browser tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null; \
	else echo "note: $$pkgs missing (apt-get install them as root): the browser tests skip outside CI"; fi

# ---- build: the wheel's CMake tree persists in build/<wheel tag>, so rebuilds are incremental ----
build: venv
	@rm -f python/csdkit/_C*.so  # developer in-tree builds must not shadow the installed module
	$(PIP) install -q --no-build-isolation --no-deps .
	@$(VPY) -c "import csdkit, json; print('csdkit build:', json.dumps(csdkit.build_info()))"

# ---- tests ------------------------------------------------------------------------------------
test-cpp: build
	ctest --test-dir $(firstword $(wildcard build/cp*)) --output-on-failure

test-py: build tools browser-deps
	$(VPY) -m pytest -q --durations=15 tests

test: test-cpp test-py

# ruff, then the one-way layer contracts of pyproject.toml ([tool.importlinter]) on the source tree.
lint: venv
	$(VPY) -m ruff check python tests benchmarks examples
	PYTHONPATH=python $(VENV)/bin/lint-imports --no-cache

# ---- demo -------------------------------------------------------------------------------------
# Textures the built-in procedural vase with the embedded MiniPrior (no download, no GPU).
demo: build
	@rm -rf $(RUN_DIR)
	$(VPY) -m csdkit texture @vase "$(DEMO_PROMPT)" --out $(RUN_DIR)
	@echo "open $(RUN_DIR)/report.html (previews, loss curve, turntable) or load $(RUN_DIR)/textured.glb"

bench: build
	$(VPY) benchmarks/run.py hashgrid volrend raster guidance texture --quick --json bench.json

# ---- GPU check: CUDA build for this GPU only, `pytest -m cuda`, quick GPU benchmarks -------------
# Brings its own set-up (it picks a Python whose torch sees the GPU: see benchmarks/gpu_check.sh) and
# writes gpu-check/gpu-check.{md,json,log} ($$OUT when set). Without a GPU: one line, exit 0.
.PHONY: gpu-check gpu-wheels
gpu-check:
	bash benchmarks/gpu_check.sh

# Wheels the lent GPU machine lacks (it has no network), into .whl/ for the device tool's carry.
gpu-wheels:
	bash benchmarks/gpu_wheels.sh

clean:
	rm -rf build runs python/csdkit/_C*.so
