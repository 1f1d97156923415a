# The two commands: `make run` (service with the reference network on SpatiaLite) and `make test` (everything).
.PHONY: run test lint bench

run:
	./scripts/run.sh

test:
	./scripts/test.sh

# One benchmark each: make bench (route planning), make bench-http, bench-ingest, bench-stream, bench-memory,
# bench-growth, bench-scaleout. Options: make bench-http ARGS="--backend postgis".
bench:
	./scripts/bench.sh routing $(ARGS)

bench-%:
	./scripts/bench.sh $* $(ARGS)
