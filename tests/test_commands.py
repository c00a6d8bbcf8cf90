"""Slash commands through the worker, a real Redis and the fake GitHub that knows users and permissions."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from typing import Any

import pytest

from bot.commands.parse import parse_commands
from bot.intake.queue import Keys
from tests.conftest import FIXTURES
from tests.test_runner_health import ORG, Pool, issues
from tests.test_worker import enqueue, run_until

KEYS = Keys("nimbys")
REPO = "aigdat/gaia"
EXAMPLE = json.loads((FIXTURES / "webhooks" / "issue_comment.created.1.json").read_text())
_next_id = iter(range(70_000, 80_000))


def comment(body: str, login: str = "alice", *, pr: bool = True, action: str = "created", number: int = 7,
            kind: str = "User", comment_id: int | None = None) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data["action"] = action
    data["comment"] = {"id": comment_id or next(_next_id), "body": body, "user": {"login": login, "type": kind}}
    data["issue"] = {"number": number, "title": "t", "user": {"login": "author"}}
    if pr:
        data["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    data["repository"] = {"full_name": REPO, "owner": {"login": ORG}}
    data["organization"] = {"login": ORG}
    data["installation"] = {"id": 1}
    return data


@pytest.fixture
def bot(settings_for, fake_github, r):  # type: ignore[no-untyped-def]
    policy = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    policy.write("health:\n  issues-repo: aigdat/nimbys\n  admins: [pooladmin]\n")
    policy.close()
    settings = settings_for(live=True, github_url=fake_github.url, policy_path=policy.name, max_attempts=2)
    st = fake_github.state
    st.members[ORG] = {"alice": "member", "bob": "member", "olga": "admin", "jefowers": "member",
                       "pooladmin": "member"}
    st.permissions[(REPO, "alice")] = "write"
    st.permissions[("aigdat/nimbys", "alice")] = "write"
    st.permissions[(REPO, "bob")] = "read"
    st.prs[(REPO, 7)] = {"head": "h7", "author": "bob"}
    st.issues[REPO] = {3: {"id": 3, "title": "an issue", "state": "open"}}
    st.users.add("jefowers")

    def say(payload: dict[str, Any]) -> None:
        delivery = enqueue(r, "issue_comment", payload)
        run_until(settings, lambda: r.get(KEYS.status(delivery)) in (b"done", b"failed"), timeout=30)
        assert r.get(KEYS.status(delivery)) == b"done", r.xrange(KEYS.dead)

    return say


def replies(fake: Any, number: int = 7) -> list[str]:
    return [c["body"] for c in fake.state.comments_on(REPO, number)]


def reactions(fake: Any) -> list[str]:
    return [content for _cid, content in fake.state.reactions]


def test_parsing_ignores_code_quotes_and_caps_at_five() -> None:
    body = "hi\n/nimbys status\n> /nimbys quarantine x\n```\n/nimbys restore y\n```\n" + "/nimbys help\n" * 6
    commands, over = parse_commands(body)
    assert [c.name for c in commands] == ["status", "help", "help", "help", "help"] and over == 2
    assert parse_commands("/nimbysx status\nplease /nimbys help")[0] == []


def test_help_for_anyone_with_reactions(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    bot(comment("/nimbys help", login="stranger"))
    [reply] = replies(fake_github)
    assert reply.startswith("@stranger") and "/nimbys requeue [RUN_ID…]" in reply
    assert reactions(fake_github) == ["eyes", "rocket"]


def test_exact_calls_for_status(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    Pool(fake_github, ["jefowers-stx-1", "amy-stx-1"])
    bot(comment("/nimbys status", login="alice"))
    calls = [(c.method, re.sub(r"/\d{3,}", "/N", c.path)) for c in fake_github.calls
             if not c.path.endswith("/access_tokens")]
    assert calls == [
        ("POST", f"/repos/{REPO}/issues/comments/N/reactions"),
        ("GET", f"/orgs/{ORG}/members/alice"),
        ("GET", f"/orgs/{ORG}/actions/runners"),
        ("POST", f"/repos/{REPO}/issues/7/comments"),
        ("POST", f"/repos/{REPO}/issues/comments/N/reactions"),
    ]
    [reply] = replies(fake_github)
    assert "| `jefowers-stx-1` | active |" in reply and "| jefowers |" in reply


def test_status_refused_to_non_members(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    bot(comment("/nimbys status", login="mallory"))
    assert "not allowed: `status` is for members of aigdat" in replies(fake_github)[0]
    assert reactions(fake_github) == ["eyes", "confused"]


def test_quarantine_by_a_member_and_refused_to_others(bot, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, [f"r{i}-stx-1" for i in range(4)])
    bot(comment("/nimbys quarantine r2-stx-1 fan is dead", login="mallory"))
    assert "stx" in pool.labels("r2-stx-1") and "not allowed" in replies(fake_github)[-1]
    bot(comment("/nimbys quarantine R2-STX-1 fan is dead", login="bob"))
    assert "stx" not in pool.labels("r2-stx-1")
    [issue] = issues(fake_github).values()
    assert "bob: fan is dead" in issue["body"]
    assert r.hget("nimbys:health:state:r2-stx-1", "quarantined_by") == b"bob"
    assert "Only `/nimbys restore r2-stx-1` puts it back" in replies(fake_github)[-1]


def test_unknown_runner_gets_the_closest_names(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    Pool(fake_github, ["jefowers-stx-1", "jefowers-stx-2", "amy-stx-1"])
    bot(comment("/nimbys quarantine jefower-stx-1", login="bob"))
    assert "no runner `jefower-stx-1`" in replies(fake_github)[0] and "`jefowers-stx-1`" in replies(fake_github)[0]
    assert reactions(fake_github)[-1] == "confused"


def test_restore_by_the_maintainer_or_a_writer_of_the_issues_repo(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    pool = Pool(fake_github, ["jefowers-stx-1", "amy-stx-1", "bo-stx-1", "cy-stx-1"])
    bot(comment("/nimbys quarantine jefowers-stx-1 flaky npu", login="bob"))
    bot(comment("/nimbys restore jefowers-stx-1", login="bob"))  # a member without write access
    assert "not allowed: `restore`" in replies(fake_github)[-1] and "stx" not in pool.labels("jefowers-stx-1")
    bot(comment("/nimbys restore jefowers-stx-1", login="jefowers"))  # its maintainer
    assert "stx" in pool.labels("jefowers-stx-1") and "restored" in replies(fake_github)[-1]
    bot(comment("/nimbys quarantine jefowers-stx-1 again", login="bob"))
    bot(comment("/nimbys restore jefowers-stx-1", login="alice"))  # write access to the issues repo
    assert "stx" in pool.labels("jefowers-stx-1")


def test_exempt_for_admins_only(bot, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    Pool(fake_github, ["r0-stx-1", "r1-stx-1"])
    bot(comment("/nimbys exempt r0-stx-1 on", login="bob"))
    assert "not allowed" in replies(fake_github)[-1] and r.hget("nimbys:health:state:r0-stx-1", "exempt") is None
    bot(comment("/nimbys exempt r0-stx-1 on", login="olga"))  # an org admin
    assert r.hget("nimbys:health:state:r0-stx-1", "exempt") == b"1"
    bot(comment("/nimbys exempt r0-stx-1 off", login="pooladmin"))  # a configured pool admin
    assert r.hget("nimbys:health:state:r0-stx-1", "exempt") == b"0"


def _runs(fake: Any) -> None:
    def job(jid: int, conclusion: str, runner: str, labels: list[str]) -> dict[str, Any]:
        return {"id": jid, "conclusion": conclusion, "runner_name": runner, "labels": labels, "name": f"j{jid}"}

    fake.state.runs[REPO] = [
        {"id": 501, "name": "NPU tests", "head_sha": "h7", "conclusion": "failure", "run_attempt": 2,
         "html_url": "https://github.com/aigdat/gaia/actions/runs/501",
         "jobs": [job(1, "failure", "r0-stx-1", ["stx"]), job(2, "success", "r1-stx-1", ["stx"])]},
        {"id": 502, "name": "DML tests", "head_sha": "h7", "conclusion": "failure", "run_attempt": 1,
         "html_url": "https://github.com/aigdat/gaia/actions/runs/502",
         "jobs": [job(3, "failure", "r1-stx-1", ["stx", "Windows"])]},
        {"id": 503, "name": "Hosted CI", "head_sha": "h7", "conclusion": "failure", "run_attempt": 1,
         "html_url": "", "jobs": [job(4, "failure", "GitHub Actions 2", ["ubuntu-latest"])]},
        {"id": 504, "name": "Old head", "head_sha": "h6", "conclusion": "failure", "run_attempt": 1,
         "html_url": "", "jobs": [job(5, "failure", "r0-stx-1", ["stx"])]},
    ]


def test_requeue_reruns_both_failed_nimbys_runs_and_says_which_runner_is_out(bot, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    Pool(fake_github, ["r0-stx-1", "r1-stx-1", "r2-stx-1", "r3-stx-1"])
    _runs(fake_github)
    bot(comment("/nimbys quarantine r0-stx-1 bad disk", login="bob", pr=False, number=3))
    bot(comment("/nimbys requeue", login="alice"))
    assert sorted(fake_github.state.reran_runs) == [501, 502]
    reply = replies(fake_github)[-1]
    assert "`r0-stx-1` (now out of the pool)" in reply and "`r1-stx-1`" in reply
    assert reactions(fake_github)[-1] == "rocket"


def test_requeue_by_the_author_member_named_runs_and_refusals(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    _runs(fake_github)
    bot(comment("/nimbys requeue 502", login="bob"))  # read access, but the PR's author and a member
    assert fake_github.state.reran_runs == [502]
    bot(comment("/nimbys requeue", login="mallory"))
    assert "not allowed: `requeue` needs write access" in replies(fake_github)[-1]
    bot(comment("/nimbys requeue", login="alice", pr=False))
    assert "works on a pull request" in replies(fake_github)[-1]
    bot(comment("/nimbys requeue x1", login="alice"))
    assert "run ids are numbers. Usage: `/nimbys requeue [RUN_ID…]`" in replies(fake_github)[-1]
    assert fake_github.state.reran_runs == [502]


def test_lint_reruns_the_pr_report(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    fake_github.state.add_pr_files(REPO, 7, [(".github/workflows/npu.yml", "added")])
    workflow = "name: npu\non: push\njobs:\n  t:\n    runs-on: stx\n    steps:\n      - run: echo npu\n"
    fake_github.state.put_file(REPO, "h7", ".github/workflows/npu.yml", workflow)
    bot(comment("/nimbys lint", login="mallory"))
    assert "not allowed: `lint` needs write access" in replies(fake_github)[-1]
    assert not fake_github.state.check_runs
    bot(comment("/nimbys lint", login="bob"))  # the PR's author, a member
    [run] = fake_github.state.check_runs.values()
    assert run["head_sha"] == "h7" and run["conclusion"] == "failure"
    assert "linted again: failure" in replies(fake_github)[-1]


def test_unknown_command_and_wrong_arguments_change_nothing(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    bot(comment("/nimbys reboot everything\n/nimbys exempt x maybe", login="alice"))
    [reply] = replies(fake_github)
    assert "unknown command `reboot`" in reply and "say `on` or `off`" in reply
    assert reactions(fake_github) == ["eyes", "confused"]
    assert not fake_github.calls_to("DELETE", ".") and not fake_github.calls_to("PATCH", ".")


def test_edits_bots_and_redeliveries(bot, fake_github) -> None:  # type: ignore[no-untyped-def]
    bot(comment("/nimbys help", action="edited"))
    bot(comment("/nimbys help", login="nimbys-bot[bot]", kind="Bot"))
    bot(comment("/nimbys help", login="dependabot[bot]"))
    assert not replies(fake_github) and not fake_github.state.reactions
    payload = comment("/nimbys help", login="alice", comment_id=424242)
    bot(payload)
    bot(copy.deepcopy(payload))  # GitHub redelivers under another delivery id
    assert len(replies(fake_github)) == 1
