"""The files `flujo init` writes: a sample spec with a test and a policy, sample inputs and
the repository's `.github/flujo.yml`. Its cassette is recorded when `init` runs (from
Flujo's built-in fake model), so it always matches the spec below."""

from __future__ import annotations

SPEC_FOLDER = "flujo"  # the default `specs:` globs include flujo/**/*.yaml
SPEC_NAME = "triage.yaml"

SPEC = """\
# A sample Flujo pipeline, written by `flujo init`: make it yours.
# Check it: flujo validate flujo/   Test it: flujo test   Reference: flujo schema --markdown
version: "1"
name: triage
description: Classify a support ticket and draft a reply for the right team.

agents:
  classifier:
    model: openai:gpt-4o
    system_prompt: |
      Classify the customer's support ticket.
      Answer with JSON: {"category": "billing" | "technical" | "other"}.
    output_schema:
      type: object
      required: [category]
      properties:
        category: {enum: [billing, technical, other]}
    temperature: 0
    max_tokens: 20
  writer:
    model: openai:gpt-4o-mini
    system_prompt: You write short, friendly replies to customers. Never promise refunds.
    max_tokens: 200

steps:
  - name: classify
    uses: agents.classifier
    input: "{{ input.ticket }}"
    config: {max_retries: 2, timeout_s: 20}
  - name: route
    kind: conditional
    condition_expression: steps.classify.output.category
    branches:
      billing:
        steps:
          - name: billing_reply
            uses: agents.writer
            input: "Billing question: {{ input.ticket }}"
    default:
      steps:
        - name: generic_reply
          uses: template_render
          with: {template: "Thanks for writing in! We will reply within one business day."}

# `flujo test` runs these; the writer's reply is replayed from cassettes/triage/.
tests:
  - name: a double charge gets a billing reply
    input: {ticket: "I was charged twice for my subscription."}
    mocks: {classify: {category: billing}}
    assertions:
      - "steps.billing_reply.success"

# Judged on every run (and by the flujo/policy check on every pull request).
policies:
  - id: cost_gate
    description: A ticket never costs more than a cent.
    assert: "result.total_cost_usd <= 0.01"
    action: FAIL_RUN
"""

INPUTS = """\
{"ticket": "I was charged twice for my subscription."}
{"ticket": "The app crashes with error E_SYNC_42 when I open settings."}
{"ticket": "How do I change my email address?"}
{"ticket": "Please send me last month's invoice."}
{"ticket": "Sync fails on v2.3.1 with a timeout."}
"""

CONFIG = """\
# Flujo's settings for this repository (read by `flujo validate` and the GitHub App).
# specs: where the pipelines are (globs; `*` stays in a folder, `**/` spans folders).
specs:
  - "flujo/**/*.yaml"
  - "flujo/**/*.yml"
  - "**/*.flujo.yaml"
  - "**/*.flujo.yml"
"""

GITIGNORE_ENTRY = ".flujo/"
"""The run store and caches (`.flujo/flujo.db`, `.flujo/cache/`): local, never committed."""
