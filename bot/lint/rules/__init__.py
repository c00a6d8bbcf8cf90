"""The rule registry: ids, default severities, the guideline each enforces, and help text.

Rule functions live in the modules of this package, by what they read: the
workflow (``workflow``), a job's settings (``jobs``), script lines
(``scripts``, ``exitcode``) and environment in force (``caches``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.lint.findings import Severity

GUIDE = "NIMBYS guide, Capabilities and Limitations"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    guideline: str
    help: str


_E, _W, _N = Severity.ERROR, Severity.WARNING, Severity.NOTICE

RULES: dict[str, Rule] = {r.id: r for r in [
    Rule("parse-error", _E, "—",
         "The file is not valid YAML or not a workflow (no `jobs` mapping), so no other rule could run. "
         "Unresolved merge-conflict markers are reported at the first marker."),
    Rule("missing-emoji", _E, "Place a NIMBYS emoji 🌩️ in the name of all of your NIMBYS workflows",
         "Add 🌩️ to the top-level `name:` so reviewers see at a glance that the workflow uses the pool, "
         "e.g. `name: Test Lemonade with DirectML 🌩️`."),
    Rule("unreviewed-pr-trigger", _N, "Avoid triggering your workflow on NIMBYS before anyone has reviewed it",
         "A `pull_request`/`pull_request_target` trigger runs the workflow on the pool for every PR. Add it "
         "only after a reviewer signed off; on a PR that adds the workflow or the trigger this is an error."),
    Rule("generic-job-on-pool", _N, "Only map a workflow to NIMBYS if it actually requires Ryzen AI compute",
         "No accelerator keyword (npu, hybrid, oga, vulkan, ...) appears in the job. If it can run on "
         "generic compute, use `runs-on: windows-latest`. Keywords are whole tokens; comments in scripts count."),
    Rule("persistent-install", _W, "Install software only into the work dir",
         "The line installs or writes outside the job's work dir (AppData, Program Files, the user profile, "
         "global npm/pip --user, choco/winget/msiexec, setx, machine/user environment). It persists on the "
         "laptop across jobs. Install into `.\\` (the work dir is wiped between jobs)."),
    Rule("named-conda-env", _E, "Always create conda environments in the CWD: `conda create -p .\\env`",
         "`conda create -n NAME` puts the env in the conda install and it persists across jobs; "
         "use `conda create -p .\\NAME`."),
    Rule("pip-outside-env", _E, "Activate your work-dir conda environment before any `pip install`",
         "No activation of a work-dir environment precedes this install in the same script, so it changes "
         "the base environment. Each `run:` is a fresh shell. In PowerShell, `$NAME` is not the environment "
         "variable `$env:NAME`."),
    Rule("unchecked-exit-code", _W, "PowerShell does not fail on a program's non-zero exit code",
         "Another program runs (or the exit code is reset) before this one's exit code is checked, so a "
         "failure is ignored. Add `if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }` after it."),
    Rule("missing-timeout", _W, "Be considerate of how long your workflow runs",
         "The job has no job-level `timeout-minutes` (GitHub's default is 360 minutes of a shared laptop)."),
    Rule("long-timeout", _N, "A good target length for a NIMBYS workflow is 15 minutes",
         "`timeout-minutes` above 15 (a warning above 60). Long jobs hold a laptop others are waiting for."),
    Rule("job-fanout", _W, "A single PR shouldn't kick off more than 2-4 NIMBYS workflow jobs",
         "One pull_request event would start more NIMBYS jobs than the limit (jobs x matrix combinations, "
         "over all workflows linted together). Reduce the matrix or move jobs to push/workflow_dispatch."),
    Rule("hf-cache-outside-workdir", _W, "Place your Hugging Face cache inside the `_work` directory",
         "The job fetches Hugging Face models while HF_HOME is not set inside the work dir, so models pile "
         "up on the laptop's disk. Set `HF_HOME: ${{ github.workspace }}\\hf-cache` at job level."),
    Rule("lemonade-cache-outside-workdir", _W, "Place your Lemonade cache inside the `_work` directory",
         "The job runs Lemonade while LEMONADE_CACHE_DIR is not set inside the work dir. Set "
         "`LEMONADE_CACHE_DIR: .\\ci-cache` at job level."),
    Rule("lemonade-cache-flag", _N, "Prefer the LEMONADE_CACHE_DIR environment variable over `-d`",
         "`-d`/`--cache-dir` applies to one call only; the environment variable covers every lemonade call."),
]}  # fmt: skip
