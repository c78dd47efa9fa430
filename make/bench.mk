# The benchmark and the cost model (included by the Makefile). Not part of `make test`: timings
# on a shared machine are noisy, so they are measured here, side by side, and never asserted.

BENCH_ARGS ?=

.PHONY: bench bench-quick cost

bench: local-deps ## the five latency/cost figures vs a minimal baseline: a table and .bench/results.json (a few minutes)
	$(RUN) python -m bench $(BENCH_ARGS)

bench-quick: local-deps ## a smoke run of the benchmark (seconds per figure; the numbers mean nothing)
	$(RUN) python -m bench --quick --out .bench/quick.json $(BENCH_ARGS)

cost: setup ## AWS dollars per 1,000 call-minutes from the counted requests (prices: bench/prices.py)
	$(RUN) python -m bench.cost $(if $(MARKDOWN),--markdown)
