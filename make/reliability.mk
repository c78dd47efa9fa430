# Reliability and security through the local stack: faults injected behind a live call, bad input at
# its edges, load with barge-ins, and privacy (logs and TTL). Included by the Makefile.
# `make test` runs the tier at reduced size, with an 8 s integration timeout for the budget tests;
# `make load` runs at full size: 100 concurrent calls x 10 turns, API Gateway's real 29 s, and
# 2,000 fuzzed frames. The figures are printed and written to .local/reliability/.

.PHONY: test-reliability load

test: test-reliability

test-reliability: local-deps ## faults, bad input, load (reduced) and privacy through the local stack
	$(RUN) pytest tests/reliability -q

load: local-deps ## full size: 100 calls x 10 turns with barge-ins, the real 29 s timeout, 2,000 fuzzed frames
	RELIABILITY_FULL=1 $(RUN) pytest tests/reliability/test_load.py tests/reliability/test_budget.py \
		tests/reliability/test_bad_frames.py -q
