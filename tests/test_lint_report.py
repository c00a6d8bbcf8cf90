"""PR lint report through the real worker, a real Redis and the strict fake GitHub."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from bot.intake.queue import Keys
from bot.lint_report.report import MARKER
from tests.conftest import FIXTURES
from tests.test_worker import enqueue, run_until

KEYS = Keys("nimbys")
REPO = "aigdat/gaia"

BAD = textwrap.dedent("""\
    name: NPU tests
    on:
      pull_request:
    jobs:
      test:
        runs-on: stx
        steps:
          - run: |
              conda create -n gaiaenv python=3.10 -y
              pip install -e .
    """)
GOOD = textwrap.dedent("""\
    name: NPU tests 🌩️
    on:
      workflow_dispatch:
    jobs:
      test:
        runs-on: stx
        timeout-minutes: 15
        steps:
          - name: NPU smoke test
            run: |
              conda create -p .\\env python=3.10 -y
              if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
              conda run -p .\\env python -m pip install -e .
    """)
PLAIN = "name: CI\non: pull_request\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n"
PATH = ".github/workflows/npu.yml"


def pr_payload(action: str = "opened", number: int = 7, head: str = "h1", base: str = "b1",
               head_repo: str = REPO) -> dict[str, Any]:
    data = json.loads((FIXTURES / "webhooks" / "pull_request.opened.1.json").read_text())
    data["action"] = action
    data["number"] = number
    data["installation"] = {"id": 1}
    data["repository"]["full_name"] = REPO
    pr = data["pull_request"]
    pr["number"] = number
    pr["head"]["sha"], pr["base"]["sha"] = head, base
    pr["head"]["repo"] = {"full_name": head_repo}
    pr["base"]["repo"] = {"full_name": REPO}
    return data


def deliver(settings: Any, r: Any, payload: dict[str, Any], event: str = "pull_request") -> str:
    delivery = enqueue(r, event, payload)
    run_until(settings, lambda: r.get(KEYS.status(delivery)) in (b"done", b"failed"))
    assert r.get(KEYS.status(delivery)) == b"done", r.xrange(KEYS.dead)
    return delivery


def bot_comments(fake: Any) -> list[dict[str, Any]]:
    return [c for c in fake.state.comments_on(REPO, 7) if c["user"] == "nimbys-bot[bot]"]


def test_bad_workflow_gets_one_check_run_and_one_comment_then_edits_then_green(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "added"), ("README.md", "modified")])
    fake_github.state.put_file(REPO, "h1", PATH, BAD)
    deliver(settings, r, pr_payload())
    [run] = fake_github.state.check_runs.values()
    assert (run["name"], run["head_sha"], run["status"], run["conclusion"]) == ("NIMBYS lint", "h1", "completed",
                                                                                "failure")
    found = {(a["start_line"], a["annotation_level"], a["title"].split(":")[0]) for a in run["annotations"]}
    assert (1, "failure", "missing-emoji") in found
    assert (3, "failure", "unreviewed-pr-trigger") in found  # the PR adds the workflow: an error
    assert (9, "failure", "named-conda-env") in found and (10, "failure", "pip-outside-env") in found
    assert (5, "warning", "missing-timeout") in found
    [comment] = bot_comments(fake_github)
    assert comment["body"].startswith(MARKER)
    assert f"https://github.com/{REPO}/blob/h1/{PATH}#L9" in comment["body"]
    assert "nimbys: ignore[" in comment["body"] and "named-conda-env" in comment["body"]

    # A second push: the same comment is edited, not re-posted.
    fake_github.state.put_file(REPO, "h2", PATH, BAD.replace("NPU tests", "NPU tests 🌩️"))
    deliver(settings, r, pr_payload("synchronize", head="h2"))
    [comment] = bot_comments(fake_github)
    assert comment.get("edits") == 1 and "`h2`" in comment["body"]
    assert len(fake_github.state.check_runs) == 2

    # The same head again (another delivery): nothing to change in the comment, so no edit.
    deliver(settings, r, pr_payload("synchronize", head="h2"))
    assert bot_comments(fake_github)[0].get("edits") == 1

    # A fixing push turns the check green and the comment says so.
    fake_github.state.put_file(REPO, "h3", PATH, GOOD)
    deliver(settings, r, pr_payload("synchronize", head="h3"))
    latest = max(fake_github.state.check_runs.values(), key=lambda run: run["id"])
    assert (latest["conclusion"], latest["annotations"]) == ("success", [])
    [comment] = bot_comments(fake_github)
    assert "No findings" in comment["body"] and comment.get("edits") == 2


def test_calls_per_pr_event_are_counted(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    modified = BAD.replace("name: NPU tests", "name: NPU tests 🌩️")
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "modified")])
    fake_github.state.put_file(REPO, "h1", PATH, modified)
    fake_github.state.put_file(REPO, "b1", PATH, modified.replace("pull_request", "push"))
    deliver(settings, r, pr_payload())
    calls = [(c.method, re.sub(r"\d{3,}", "N", c.path)) for c in fake_github.calls
             if not c.path.endswith("/access_tokens")]
    assert calls == [
        ("GET", f"/repos/{REPO}/pulls/7/files"),
        ("GET", f"/repos/{REPO}/contents/.github/nimbys.yml"),       # the policy, at the base commit
        ("GET", f"/repos/{REPO}/contents/{PATH}"),                   # the workflow at the head
        ("GET", f"/repos/{REPO}/contents/{PATH}"),                   # its base version: has it the trigger?
        ("POST", f"/repos/{REPO}/check-runs"),
        ("PATCH", f"/repos/{REPO}/check-runs/N"),                    # annotations + completed
        ("GET", "/app"),                                             # the bot's own login, once, then cached
        ("GET", f"/repos/{REPO}/issues/7/comments"),
        ("POST", f"/repos/{REPO}/issues/7/comments"),
    ]
    [run] = fake_github.state.check_runs.values()
    trigger = [a for a in run["annotations"] if a["title"].startswith("unreviewed-pr-trigger")]
    assert trigger and trigger[0]["annotation_level"] == "failure"  # the PR adds the trigger
    assert "adds the pull_request trigger" in trigger[0]["message"]


def test_an_existing_trigger_stays_a_notice(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "modified")])
    fake_github.state.put_file(REPO, "h1", PATH, BAD)
    fake_github.state.put_file(REPO, "b1", PATH, BAD)
    deliver(settings, r, pr_payload())
    [run] = fake_github.state.check_runs.values()
    assert [a["annotation_level"] for a in run["annotations"] if a["title"].startswith("unreviewed")] == ["notice"]


def test_120_findings_go_in_three_annotation_batches(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    lines = "\n".join(f"          conda create -n env{i} -y" for i in range(120))
    text = "name: NPU 🌩️\non: workflow_dispatch\njobs:\n  t:\n    runs-on: stx\n    timeout-minutes: 10\n" \
           f"    steps:\n      - name: npu setup\n        shell: bash\n        run: |\n{lines}\n"
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "added")])
    fake_github.state.put_file(REPO, "h1", PATH, text)
    deliver(settings, r, pr_payload())
    [run] = fake_github.state.check_runs.values()
    batches = [len(c.body["output"].get("annotations") or []) for c in fake_github.calls_to("PATCH", "/check-runs/")]
    assert batches == [50, 50, 20]
    assert len(run["annotations"]) == 120 and run["conclusion"] == "failure"


def test_fork_pr_reads_contents_from_the_fork_and_policy_from_the_base(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fork = "someone/gaia"
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "added"), (".github/nimbys.yml", "added")])
    fake_github.state.put_file(fork, "h1", PATH, BAD)
    own_policy = "rules:\n  missing-emoji: off\n  named-conda-env: off\n"
    fake_github.state.put_file(fork, "h1", ".github/nimbys.yml", own_policy)
    deliver(settings, r, pr_payload(head_repo=fork))
    assert fake_github.calls_to("GET", f"^/repos/{fork}/contents/{PATH}$")
    assert fake_github.calls_to("GET", f"^/repos/{REPO}/contents/.github/nimbys.yml$")
    assert not fake_github.calls_to("GET", f"^/repos/{fork}/contents/.github/nimbys.yml$")
    [run] = fake_github.state.check_runs.values()
    rules = {a["title"].split(":")[0] for a in run["annotations"]}
    assert {"missing-emoji", "named-conda-env"} <= rules  # the PR's own config switched nothing off
    assert f"https://github.com/{fork}/blob/h1/{PATH}#L" in bot_comments(fake_github)[0]["body"]


def test_the_base_branch_policy_applies(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "added")])
    fake_github.state.put_file(REPO, "h1", PATH, BAD)
    fake_github.state.put_file(REPO, "b1", ".github/nimbys.yml", "rules:\n  missing-emoji: off\n")
    deliver(settings, r, pr_payload())
    [run] = fake_github.state.check_runs.values()
    assert "missing-emoji" not in {a["title"].split(":")[0] for a in run["annotations"]}


def test_a_pr_touching_no_nimbys_workflow_gets_nothing(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.state.add_pr_files(REPO, 7, [(".github/workflows/ci.yml", "modified"), ("src/x.py", "added")])
    fake_github.state.put_file(REPO, "h1", ".github/workflows/ci.yml", PLAIN)
    deliver(settings, r, pr_payload())
    assert not fake_github.state.check_runs and not bot_comments(fake_github)
    assert not [c for c in fake_github.calls_to("POST", ".") if not c.path.endswith("/access_tokens")]


def test_unparsable_and_unfetchable_workflows_are_reported(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    broken = ".github/workflows/broken.yml"
    gone = ".github/workflows/gone.yml"
    fake_github.state.add_pr_files(REPO, 7, [(broken, "added"), (gone, "modified")])
    fake_github.state.put_file(REPO, "h1", broken, "name: x\njobs:\n  t:\n    runs-on: stx\n    steps: [\n")
    deliver(settings, r, pr_payload())
    [run] = fake_github.state.check_runs.values()
    assert run["conclusion"] == "failure"
    assert [a["title"].split(":")[0] for a in run["annotations"]] == ["parse-error"]
    body = bot_comments(fake_github)[0]["body"]
    assert "parse-error" in body and f"`{gone}`: not linted: not found at the head commit" in body


def test_comments_of_people_with_the_marker_are_not_taken_over(settings_for, fake_github, r) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(live=True, github_url=fake_github.url)
    fake_github.state.add_comment(REPO, 7, f"quoting the bot: {MARKER}", user="mallory")
    fake_github.state.add_pr_files(REPO, 7, [(PATH, "added")])
    fake_github.state.put_file(REPO, "h1", PATH, BAD)
    deliver(settings, r, pr_payload())
    mallory = [c for c in fake_github.state.comments_on(REPO, 7) if c["user"] == "mallory"]
    assert mallory[0]["body"] == f"quoting the bot: {MARKER}" and len(bot_comments(fake_github)) == 1


def test_comment_bodies_stay_under_github_limits() -> None:
    from bot.lint.findings import Finding, Severity
    from bot.lint_report.report import COMMENT_LIMIT, Report, comment, summary

    many = [Finding(path=f".github/workflows/w{i % 40}.yml", line=i + 1, column=1, rule="named-conda-env",
                    severity=Severity.ERROR, message="x" * 300) for i in range(2000)]
    report = Report(repo=REPO, head_sha="h" * 40, files=[f".github/workflows/w{i}.yml" for i in range(40)],
                    findings=many)
    body = comment(report, "https://github.com/aigdat/gaia/runs/1")
    assert len(body) <= COMMENT_LIMIT and "truncated" in body and "runs/1" in body
    assert len(summary(report)) <= 65_535
