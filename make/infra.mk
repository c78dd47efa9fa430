# The CDK stack: synthesize, deploy, wire a Twilio number, tear down. Included by the Makefile.
# Synthesis needs node (jsii) but not the CDK CLI; deploy/destroy use the CLI pinned in infra/cdk-cli.

CDK_CLI_DIR := infra/cdk-cli
CDK := $(CDK_CLI_DIR)/node_modules/.bin/cdk
CDK_OUT ?= cdk.out
STACK_OUTPUTS ?= cdk-outputs.json
# Extra CDK CLI arguments, e.g. CDK_ARGS="-c alarmEmail=me@example.com -c stageName=dev"
CDK_ARGS ?=
# Extra `make smoke` arguments, e.g. SMOKE_ARGS="--reply-timeout 30" (python -m infra.cli.smoke --help)
SMOKE_ARGS ?=
# Deploys without a terminal (CI): the CDK CLI asks before any change that adds IAM permissions
# (every first deploy does) and, with no terminal to ask on, stops. REQUIRE_APPROVAL=never lets it
# go ahead (`make deploy REQUIRE_APPROVAL=never`); `any-change` and `broadening` are the others.
REQUIRE_APPROVAL ?=
# `make deploy SKIP_PREFLIGHT=1` deploys without the read-only checks first.
SKIP_PREFLIGHT ?=
# The CLI runs app.py through cdk.json; tell the bundler where uv is.
CDK_RUN = UV=$(abspath $(UV)) $(CDK)

.PHONY: requirements synth cdk-cli bootstrap diff preflight deploy outputs smoke logs destroy twilio-number call clean-infra

functions/requirements.txt: pyproject.toml uv.lock | $(UV)
	$(UV) export --frozen --no-dev --no-emit-project --no-hashes --format requirements-txt --quiet -o $@

requirements: functions/requirements.txt ## the Lambda bundle's requirements, exported from uv.lock

synth: setup functions/requirements.txt ## cdk.out/ with the real Lambda bundle: no AWS credentials, no Docker
	rm -rf $(CDK_OUT)
	@start=$$(date +%s); CDK_OUTDIR=$(CDK_OUT) $(RUN) python app.py; \
	  echo "synthesized $(CDK_OUT)/ in $$(( $$(date +%s) - start )) s (cdk-nag AwsSolutions passed)"
	$(RUN) python -m infra.cli.bundle_size $(CDK_OUT)

$(CDK): $(CDK_CLI_DIR)/package.json $(CDK_CLI_DIR)/package-lock.json
	npm ci --prefix $(CDK_CLI_DIR) --no-audit --no-fund
	@touch $@

cdk-cli: $(CDK) ## install the pinned CDK CLI into infra/cdk-cli/node_modules

bootstrap: setup $(CDK) ## once per AWS account and region: cdk bootstrap (needs AWS credentials)
	$(CDK_RUN) bootstrap $(CDK_ARGS)

diff: setup functions/requirements.txt $(CDK) ## what a deploy would change (needs AWS credentials)
	$(CDK_RUN) diff $(CDK_ARGS)

preflight: setup ## read-only checks of what a first deploy trips on: Node, credentials, bootstrap, Lambda quota, models
	$(RUN) python -m infra.cli.preflight $(CDK_ARGS)

deploy: $(if $(SKIP_PREFLIGHT),,preflight) setup functions/requirements.txt $(CDK) ## preflight, deploy the stack, print its outputs (REQUIRE_APPROVAL=never in CI)
	$(CDK_RUN) deploy --outputs-file $(STACK_OUTPUTS) $(if $(REQUIRE_APPROVAL),--require-approval $(REQUIRE_APPROVAL)) $(CDK_ARGS)
	$(RUN) python -m infra.cli.stack_outputs $(STACK_OUTPUTS)

outputs: setup ## print the deployed stack's outputs again (from cdk-outputs.json)
	$(RUN) python -m infra.cli.stack_outputs $(STACK_OUTPUTS)

smoke: setup ## prove the deployed stack works end to end, driven as Twilio would (TWILIO_AUTH_TOKEN in env)
	$(RUN) python -m infra.cli.smoke --stack-outputs $(STACK_OUTPUTS) $(SMOKE_ARGS)

logs: setup ## follow a function's logs: FN=message|webhook|connect|timers|records (needs the AWS CLI)
	@case "$(FN)" in message) out=MessageLogGroup;; webhook) out=WebhookLogGroup;; connect) out=ConnectLogGroup;; \
	  timers) out=TimersLogGroup;; records) out=RecordsLogGroup;; \
	  *) echo "usage: make logs FN=message|webhook|connect|timers|records"; exit 2;; esac; \
	  group=$$($(RUN) python -m infra.cli.stack_outputs $(STACK_OUTPUTS) --get $$out); \
	  aws logs tail "$$group" --follow --format short

destroy: setup $(CDK) ## delete the stack; the sessions table (unless retainTable=false) and the records bucket are kept
	$(CDK_RUN) destroy $(CDK_ARGS)

twilio-number: setup ## point NUMBER's voice webhook at the stack (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN in env)
	@test -n "$(NUMBER)" || { echo "usage: make twilio-number NUMBER=+15551234567"; exit 2; }
	$(RUN) python -m infra.cli.twilio_number --number "$(NUMBER)" --stack-outputs $(STACK_OUTPUTS)

call: setup ## call TO from your Twilio number FROM through the agent; AGENT=name picks the agent, AMD=Enable machine detection
	@test -n "$(TO)" && test -n "$(FROM)" || { echo "usage: make call TO=+1... FROM=+1... [AMD=Enable]"; exit 2; }
	$(RUN) python -m infra.cli.outbound_call --to "$(TO)" --from "$(FROM)" \
	  $(if $(AMD),--machine-detection $(AMD)) $(if $(AGENT),--agent $(AGENT)) --stack-outputs $(STACK_OUTPUTS)

test-infra: setup ## CDK assertions, cfn-lint, cdk-nag, the real Lambda bundle, the Twilio commands (offline)
	$(RUN) pytest tests/infra -q

clean: clean-infra
clean-infra:
	rm -rf $(CDK_CLI_DIR)/node_modules $(STACK_OUTPUTS)
