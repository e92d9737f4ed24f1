#!/bin/sh
# Propose the top suggestion for support_triage.yaml in the demo repository (made by
# demo_repo.sh) as a local pull request: a branch flujo/suggest/<id> with its body in
# .git/flujo/pulls/. The runs behind it are the ones `flujo demo` recorded on the fake
# model server, so they count only through `--include fake`, and the body says so.
# Used by `./dev demo`: sh examples/demo_pr.sh REPO STORE [FLUJO]
set -eu
repo=$1
store=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
flujo=${3:-flujo}
cd "$repo"
exec "$flujo" suggest flujo/support_triage.yaml --store "$store" --limit 1 --create-pr \
    --include fake >/dev/null
