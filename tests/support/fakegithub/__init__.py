"""A fake GitHub for the bot's tests: stateful, on loopback, checked against real GitHub data.

The reference data is vendored in `tests/github/` (or `$FLUJO_GITHUB_REFERENCE`): GitHub's
OpenAPI description (73 paths), real webhook payloads with their JSON Schema, and recorded
responses. Every request the bot sends and every answer the fake gives is validated against
the OpenAPI description; anything off is a *violation* and fails the test.

Fixtures (registered in tests/conftest.py)::

    async def test_bot_reports_a_check(fake_github, github_reference):
        fake_github.add_installation(42, "acme")
        sha = fake_github.create_repo("acme/flows", {"flows/a.yaml": "name: a\\n"})
        ...  # run the bot with base_url=fake_github.base_url, app_id=fake_github.app_id,
             # private key fake_github.private_key_pem, secret fake_github.webhook_secret
        run = fake_github.check_run("acme/flows", sha, "flujo/validate")
        assert run.conclusion == "failure" and len(run.annotations) == 3
        assert len(fake_github.calls("POST", "/repos/{owner}/{repo}/check-runs")) == 1

`fake_github` is started per test and fails it at teardown if `violations` is not empty (take
the ones you provoke on purpose with `take_violations()`). Outside pytest use
`async with FakeGitHub() as fake:`.

Talking to it: `gidgethub.aiohttp.GitHubAPI(session, "flujo-test", base_url=fake.base_url)`.
App endpoints (`/app…`, `/repos/{o}/{r}/installation`) need an RS256 App JWT signed with
`fake.private_key_pem` (`iss` = `fake.app_id`, exp - iat ≤ 10 min); `POST
/app/installations/{id}/access_tokens` returns a `ghs_…` token valid one hour. Everything else
needs `Authorization: token <installation token>` (or `Bearer`) for the installation that owns
the repository (else 401 "Bad credentials" / 404). Note: PyJWT re-parses a PEM key on every
`get_jwt` (~120 ms, RSA checks); load it once and pass the key object (`fake.private_key` is
that object for the fake's key).

World setup (`FakeGitHub` methods): `register_from_manifest(manifest) -> code` (what
github.com does with a posted manifest form: `POST /app-manifests/{code}/conversions` then
answers once with this fake's App, key and webhook secret), `add_installation(id, account)`,
`create_repo(full_name, files, default_branch="main", installation_id=None) -> sha` (a real
bare git repository on disk), `commit(full_name, {path: text | None}, branch="main",
message=…) -> sha` (None deletes; a new branch starts from the default branch),
`open_pull(full_name, head, base=None, title=…, body=None, user="octocat", draft=False,
labels=None) -> number`,
`add_comment(full_name, number, body, user="octocat") -> id`, `edit_issue(full_name, number,
body)` (a person edits an issue on github.com), `add_review(full_name, number,
state="APPROVED", user="alice", body="") -> id`, `protect(full_name, branch, contexts,
strict=False)` (branch protection's required status checks) and `add_rule(...)` (a ruleset's
`required_status_checks` rule), both enforced on merge as GitHub does (where skipped and
neutral count as passed), `set_status(full_name, sha, context, state)` (another CI's commit
status), `add_check_run(full_name, sha, name, conclusion, status="")` (another App's run).

Read back: `check_run(full_name, sha, name)` (latest, with ALL annotations appended across
PATCHes), `check_runs_for(full_name, sha, name=None)`, `check_suites`, `pull(full_name, n)`,
`pulls(full_name)`, `issues(full_name)`, `labels(full_name, n=None)`, `comments(full_name, n)`,
`reactions(full_name, comment_id)`, `refs(full_name)`,
`branch_sha(full_name, branch)`, `files(full_name, ref=None)`, `statuses(full_name, sha)`,
`check_runs` / `check_suites` (id → object), `requests` (every
`Request(method, path, query, body, status, template)`), `calls(method, path_glob_or_template)`.

Faults: `fail(method, path_pattern, status, headers=None, body=None, times=1)` (`times=None`:
until `clear_faults()`; pattern: glob on the path or an OpenAPI template; method may be `*`),
`fail_secondary_rate_limit(method, pattern, retry_after=1)` (403 + Retry-After),
`fail_rate_limit(method, pattern, reset_in=60)` (403 + x-ratelimit-remaining: 0 →
`gidgethub.RateLimitExceeded`), `expire_tokens()` (next use of any issued token → 401).

Webhooks: `fake.webhook(event, name, repo=…, **adjust)` loads the real payload
`webhooks/<event>/<name>.json` and fills in what the fake knows: repository id, default branch,
installation; with `number=` the pull's head/base refs and SHAs, title, labels; with
`comment_id=` the comment (issue_comment: marked as a pull request's, or a plain issue's for an
issue the fake holds); with `number=` of an issue its number, title, body, state and labels;
push with `branch=`: its head and parent; check_suite with `sha=`: the fake's suite; check_run
with `check_run_id=`: that run. Other adjustments: sha, before, branch, base_branch, base_sha,
check_name, external_id, check_suite_id, label, sender, comment. `webhooks.payload(...)` does
the same without a fake, `webhooks.validate(event, payload)` checks against `webhooks/schema.json`,
`webhooks.signed(event, payload, secret)` gives GitHub's headers and body (X-Hub-Signature-256),
`await fake.deliver(url, event, payload)` POSTs it signed with `fake.webhook_secret`. See
`test_end_to_end_…` in tests/test_fake_github.py for the shape of a bot test.

GitHub rules the fake enforces (422 + violation): conclusion required when status is completed,
≤ 50 annotations per request, summary/text ≤ 65535 bytes of UTF-8, ≤ 3 actions, annotation fields
and levels, enums and types of every body. Check runs list with `filter=latest` by default (one
run per name), as GitHub does. Pagination: `per_page` (30, max 100) and `page` with GitHub's
`Link` header. Every response carries the x-ratelimit-* headers. Endpoints in the OpenAPI subset
that the fake does not implement answer 404 and record a violation (implemented: app and
installation tokens, manifest conversions, repos, contents, git blobs/trees/commits/refs,
compare, branches, check runs/suites, statuses, pulls, files, merge, update-branch, reviews,
labels, issues (create, get, edit, list), issue comments and their reactions, required status
checks of branch protection, branch rules, code scanning uploads, rate_limit).
The fake sends no webhooks by itself.
"""
