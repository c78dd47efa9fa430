# Reliability and security through the local stack: faults injected behind a live call, bad input at
# its edges, load with barge-ins, and privacy (logs and TTL). Included by the Makefile.
# `make test` runs the tier at reduced size and a scaled 8 s integration timeout; `make load` runs
# the load test (100 concurrent calls x 10 turns), the budget test (API Gateway's real 29 s) and the
# frame fuzzing (2,000 frames) at
# full size. Figures are printed and written to .local/reliability/.

.PHONY: test-reliability load

test: test-reliability

test-reliability: local-deps ## faults, bad input, load (reduced) and privacy through the local stack
	$(RUN) pytest tests/reliability -q

load: local-deps ## full size: 100 concurrent calls x 10 turns with barge-ins; the real 29 s integration timeout
	RELIABILITY_FULL=1 $(RUN) pytest tests/reliability/test_load.py tests/reliability/test_budget.py tests/reliability/test_bad_frames.py -q
