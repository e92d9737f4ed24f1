"""Proposals (suggestion pull requests) on GitHub and on a local repository: one per
branch, updated in place, never duplicated."""

from __future__ import annotations

from pathlib import Path

import pytest

from flujo.bot.forge import Proposal
from flujo.bot.local import LocalForge
from tests.support.bot import app_forge
from tests.support.fakegithub.server import FakeGitHub
from tests.support.gitrepo import git

REPO = "acme/flows"
SPEC = "flujo/greeter.yml"
BEFORE = "# greeting\nversion: '1'\nsteps:\n  - name: greet\n    uses: passthrough\n"
AFTER = BEFORE.replace("passthrough", "template_render")


def proposal(body: str = "Switch `greet` to a template.") -> Proposal:
    return Proposal(
        branch="flujo/suggest/abc123",
        files={SPEC: AFTER.encode()},
        message="flujo: render the greeting from a template",
        title="Render the greeting from a template",
        body=body,
        labels=("flujo",),
    )


async def test_a_proposal_opens_one_pull_request_and_updates_it(
    fake_github: FakeGitHub,
) -> None:
    fake_github.add_installation(42, "acme")
    base = fake_github.create_repo(REPO, {SPEC: BEFORE, "README.md": "hi\n"}, installation_id=42)
    async with app_forge(fake_github, 42) as forge:
        first = await forge.propose(REPO, proposal())
        assert first.created and first.changed
        pull = fake_github.pull(REPO, first.number)
        assert pull.head == "flujo/suggest/abc123" and pull.base == "main"
        assert fake_github.labels(REPO, first.number) == ["flujo"]
        files = fake_github.files(REPO, "flujo/suggest/abc123")
        assert files[SPEC] == AFTER and files["README.md"] == "hi\n"
        head = fake_github.branch_sha(REPO, "flujo/suggest/abc123")

        again = await forge.propose(REPO, proposal())
        assert (again.number, again.created, again.changed) == (first.number, False, False)
        assert fake_github.branch_sha(REPO, "flujo/suggest/abc123") == head  # no new commit

        updated = await forge.propose(REPO, proposal(body="Better words."))
        assert updated.number == first.number and updated.changed
        assert fake_github.pull(REPO, first.number).body == "Better words."
        assert len(fake_github.pulls(REPO)) == 1
        assert [p.number for p in await forge.proposals(REPO, "flujo/suggest/")] == [first.number]
        assert await forge.proposals(REPO, "other/") == []
    assert fake_github.branch_sha(REPO, "main") == base


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "flujo").mkdir()
    (tmp_path / SPEC).write_text(BEFORE)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "start")
    return tmp_path


async def test_a_local_proposal_is_a_branch_with_one_commit_and_a_body(repo: Path) -> None:
    forge = LocalForge(repo)
    first = await forge.propose("flows", proposal())
    assert first.created and first.number == 1
    assert git(repo, "show", f"flujo/suggest/abc123:{SPEC}") == AFTER
    assert git(repo, "rev-parse", "flujo/suggest/abc123^") == git(repo, "rev-parse", "main")
    diff = git(repo, "diff", "main", "flujo/suggest/abc123", "--stat")
    assert "1 file changed, 1 insertion(+), 1 deletion(-)" in diff
    assert (repo / SPEC).read_text() == BEFORE  # the working tree is untouched
    head = git(repo, "rev-parse", "flujo/suggest/abc123")

    again = await forge.propose("flows", proposal())
    assert (again.number, again.created, again.changed) == (1, False, False)
    assert git(repo, "rev-parse", "flujo/suggest/abc123") == head
    assert [p.branch for p in await forge.proposals("flows", "flujo/suggest/")] == [
        "flujo/suggest/abc123"
    ]
    body = Path(first.url).with_suffix(".md").read_text()
    assert body.startswith("# Render the greeting from a template")


def test_one_branch_per_opportunity_so_a_newer_patch_updates_its_pull_request() -> None:
    from types import SimpleNamespace

    from flujo.learn.proposal import branch_for
    from flujo.learn.suggestion_log import suggestion_id

    def suggestion(kind: str, path: str, patch: object) -> object:
        ident = suggestion_id("flujo/a.yml", kind, path)  # the patch is not part of it
        return SimpleNamespace(id=ident, spec="flujo/a.yml", kind=kind, yaml_path=path, patch=patch)

    first = branch_for(suggestion("loose_timeout", "steps[0]", [{"value": 30}]))  # type: ignore[arg-type]
    newer = branch_for(suggestion("loose_timeout", "steps[0]", [{"value": 45}]))  # type: ignore[arg-type]
    other = branch_for(suggestion("loose_timeout", "steps[1]", [{"value": 30}]))  # type: ignore[arg-type]
    assert first == newer != other
    assert first.startswith("flujo/suggest/") and len(first) == len("flujo/suggest/") + 12
