# The two commands of the README, plus the benchmarks. Everything installs itself:
# uv (if missing) from PyPI, then the locked environment with `uv sync --frozen`, compiled to
# bytecode up front: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every process
# would otherwise recompile TensorFlow on import (7 s instead of 3 s).
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.PHONY: setup demo ui test bench

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet --compile-bytecode

demo: setup
	$(UV) run --frozen recsys demo

# The Dagster UI on what `make demo` ran (the root dagster.yaml's instance), at http://127.0.0.1:3000.
ui: setup
	$(UV) run --frozen dagster dev -h 127.0.0.1 -p 3000

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: setup
	@$(UV) run --frozen pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

# Every benchmark, then the README's table regenerated from their JSON.
bench: setup
	$(UV) run --frozen python -m benchmarks.run
	$(UV) run --frozen python -m benchmarks.summary --write-readme
