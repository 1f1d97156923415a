# The two commands: `make run` (service with the reference network on SpatiaLite) and `make test` (everything).
.PHONY: run test lint bench

run:
	./scripts/run.sh

test:
	./scripts/test.sh

bench:
	./scripts/setup.sh run && .venv/bin/python -m bench.routing
