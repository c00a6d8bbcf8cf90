"""Each rule on small workflows: one that triggers it and a near miss that does not."""

from __future__ import annotations

import textwrap

import pytest

from bot.lint.config import ConfigError, LintConfig, load_config
from bot.lint.engine import lint_files, lint_text
from bot.lint.findings import Finding, Severity
from bot.lint.rules import RULES

HEAD = """\
name: Test NPU 🌩️
on:
  workflow_dispatch:
jobs:
"""


def wf(job: str, head: str = HEAD) -> str:
    return head + textwrap.indent(textwrap.dedent(job), "  ")


def job(runs_on: str = "stx", steps: str = "- run: python npu_test.py", extra: str = "timeout-minutes: 10") -> str:
    return f"t:\n  runs-on: {runs_on}\n  {extra}\n  steps:\n" + textwrap.indent(textwrap.dedent(steps), "    ")


def rules_at(text: str, config: LintConfig | None = None) -> set[tuple[str, int]]:
    return {(f.rule, f.line) for f in lint_text(text, "w.yml", config)}


def only(text: str, rule: str) -> list[Finding]:
    return [f for f in lint_text(text, "w.yml") if f.rule == rule]


# ---- which jobs are NIMBYS jobs -----------------------------------------------------------------

@pytest.mark.parametrize("runs_on", [
    "stx", "STX", "[stx, Windows]", "{ group: stx }", "{ labels: [stx-test] }", "${{ 'stx' }}",
    "${{ contains(github.event.pull_request.labels.*.name, 'stx-test') && 'stx-test' || 'stx' }}",
    """${{ fromJSON(inputs.x && '["self-hosted","Windows","stx-test"]' || '["self-hosted","stx"]') }}""",
    """["${{ inputs.runson || 'stx' }}", 'Windows']""",
])
def test_every_way_of_writing_runs_on_counts(runs_on: str) -> None:
    result = lint_files({"w.yml": wf(job(runs_on))})["w.yml"]
    assert result.nimbys_jobs == ["t"], runs_on


@pytest.mark.parametrize("runs_on", ["stx-halo", "stx-240", "[self-hosted, x-stx-1]", "windows-latest",
                                     "${{ 'stx-halo' }}"])
def test_near_misses_are_other_pools(runs_on: str) -> None:
    assert lint_files({"w.yml": wf(job(runs_on))})["w.yml"].nimbys_jobs == []


def test_matrix_values_and_input_defaults_resolve() -> None:
    matrix = "t:\n  runs-on: ${{ matrix.runner }}\n  timeout-minutes: 5\n  strategy:\n    matrix:\n" \
             "      runner: [windows-latest, stx]\n  steps:\n    - run: echo npu\n"
    assert lint_files({"w.yml": wf(matrix)})["w.yml"].nimbys_jobs == ["t"]
    head = "name: x 🌩️\non:\n  workflow_dispatch:\n    inputs:\n      runner:\n        default: stx-test\njobs:\n"
    text = wf("t:\n  runs-on: ${{ inputs.runner }}\n  timeout-minutes: 5\n  steps:\n    - run: echo npu\n", head)
    assert lint_files({"w.yml": text})["w.yml"].nimbys_jobs == ["t"]
    called = wf("t:\n  uses: ./.github/workflows/other.yml\n  with:\n    runner: stx\n")
    assert lint_files({"w.yml": called})["w.yml"].nimbys_jobs == []


def test_a_non_nimbys_workflow_gets_nothing() -> None:
    text = "name: plain\non: pull_request\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n" \
           "      - run: sudo apt-get install foo && pip install x\n"
    assert lint_text(text) == []


# ---- one trigger and one near miss per rule ----------------------------------------------------

def test_missing_emoji() -> None:
    assert ("missing-emoji", 1) in rules_at(wf(job(), head=HEAD.replace(" 🌩️", "")))
    assert ("missing-emoji", 1) in rules_at(wf(job(), head=HEAD.replace("name: Test NPU 🌩️\n", "")))
    assert not only(wf(job(), head=HEAD.replace("🌩️", "\U0001f329")), "missing-emoji")  # without U+FE0F


def test_unreviewed_pr_trigger_positions() -> None:
    assert ("unreviewed-pr-trigger", 3) in rules_at(wf(job(), head=HEAD.replace("workflow_dispatch", "pull_request")))
    inline = HEAD.replace("on:\n  workflow_dispatch:\n", "on: [push, pull_request]\n")
    assert ("unreviewed-pr-trigger", 2) in rules_at(wf(job(), head=inline))
    assert not only(wf(job()), "unreviewed-pr-trigger")


def test_generic_job_on_pool_matches_whole_tokens() -> None:
    generic = wf(job(steps="- name: inputs\n  run: echo ${{ github.event.inputs.x }}"))
    assert ("generic-job-on-pool", 6) in rules_at(generic)
    with_gpu = wf(job(steps="- run: echo x\n  env:\n    GPU_CTX_SIZE: 4"))
    assert not only(with_gpu, "generic-job-on-pool")
    in_script_comment = wf(job(steps="- run: |\n    # uses vulkan\n    echo x"))
    assert not only(in_script_comment, "generic-job-on-pool")


def test_missing_and_long_timeouts() -> None:
    assert ("missing-timeout", 5) in rules_at(wf(job(extra="env: {A: npu}")))
    findings = only(wf(job(extra="timeout-minutes: 30")), "long-timeout")
    assert [(f.line, f.severity) for f in findings] == [(7, Severity.NOTICE)]
    assert only(wf(job(extra="timeout-minutes: 90")), "long-timeout")[0].severity is Severity.WARNING
    assert not only(wf(job(extra="timeout-minutes: 15")), "long-timeout")
    assert not only(wf(job(extra="timeout-minutes: ${{ inputs.t }}")), "long-timeout")


@pytest.mark.parametrize("line,hit", [
    ("choco install nsis", True),
    ("npm install -g pnpm", True),
    ("pip install --user foo", True),
    ("conda init powershell", True),
    ("setx PATH foo", True),
    ("[Environment]::SetEnvironmentVariable('X', '1', 'Machine')", True),
    ("Start-Process nsis.exe -ArgumentList '/S' -Wait", True),
    ("Start-Process x.exe -ArgumentList '/S', '/D=C:\\Users\\me\\x' -Wait", True),
    ("Start-Process x.exe -ArgumentList '/S', \"/D=$env:GITHUB_WORKSPACE\\x\" -Wait", False),
    ("mkdir C:\\Users\\nimbys\\tools", True),
    ("Expand-Archive x.zip -DestinationPath $env:LOCALAPPDATA\\tool", True),
    ("Expand-Archive x.zip -DestinationPath .\\tool", False),
    ("Remove-Item -Recurse C:\\Users\\nimbys\\AppData\\Local\\x", False),
    ("$env:Path = \"C:\\Users\\me\\bin;$env:Path\"", False),
    ("irm https://astral.sh/uv/install.ps1 | iex", True),
])
def test_persistent_install(line: str, hit: bool) -> None:
    text = wf(job(steps=f"- shell: pwsh\n  run: |\n    echo npu\n    {line}"))
    assert bool(only(text, "persistent-install")) is hit, line
    if hit:
        assert only(text, "persistent-install")[0].line == 12


def test_persistent_install_follows_assignments() -> None:
    steps = "- run: |\n    $dir = \"C:\\Users\\me\\tool\"\n    echo npu\n    New-Item -ItemType Directory -Path $dir"
    assert [f.line for f in only(wf(job(steps=steps)), "persistent-install")] == [12]


def test_named_conda_env() -> None:
    assert only(wf(job(steps="- run: conda create -n myenv python=3.10 -y")), "named-conda-env")
    assert not only(wf(job(steps="- run: conda create -p .\\myenv python=3.10 -y")), "named-conda-env")
    assert only(wf(job(steps="- run: conda env create -f env.yml")), "named-conda-env")


def test_pip_outside_env() -> None:
    bad = "- run: |\n    conda activate base\n    pip install -e .[oga-npu]"
    assert [f.line for f in only(wf(job(steps=bad)), "pip-outside-env")] == [11]
    good = "- run: |\n    conda activate .\\lemon-npu-ci\n    pip install -e .[oga-npu]"
    assert not only(wf(job(steps=good)), "pip-outside-env")
    earlier_step = "- run: conda activate .\\env\n- run: pip install x"
    assert only(wf(job(steps=earlier_step)), "pip-outside-env")  # each run: is a fresh shell
    ps_variable = "- env:\n    CONDA_ENV_PATH: .\\env\n  run: |\n    conda activate $CONDA_ENV_PATH\n    pip install x"
    assert only(wf(job(steps=ps_variable)), "pip-outside-env")  # $X is not $env:X in PowerShell
    bash_variable = ps_variable.replace("- env:", "- shell: bash\n  env:")
    assert not only(wf(job(steps=bash_variable)), "pip-outside-env")
    conda_run = "- run: conda run -p .\\env python -m pip install x"
    assert not only(wf(job(steps=conda_run)), "pip-outside-env")


def test_unchecked_exit_code() -> None:
    bad = "- run: |\n    pip install -e .\n    python -m pytest test"
    assert [f.line for f in only(wf(job(steps=bad)), "unchecked-exit-code")] == [10]
    checked = "- run: |\n    pip install -e .\n    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }\n    python t.py"
    assert not only(wf(job(steps=checked)), "unchecked-exit-code")
    hidden = "- run: |\n    python t.py\n    exit 0"
    assert only(wf(job(steps=hidden)), "unchecked-exit-code")
    strict = "- run: |\n    $PSNativeCommandUseErrorActionPreference = $true\n    pip install x\n    python t.py"
    assert not only(wf(job(steps=strict)), "unchecked-exit-code")
    bash = "- shell: bash\n  run: |\n    pip install -e .\n    python t.py"
    assert not only(wf(job(steps=bash)), "unchecked-exit-code")
    continued = "- run: |\n    python a.py `\n      --flag\n    if (-not $?) { exit 1 }\n    python b.py"
    assert not only(wf(job(steps=continued)), "unchecked-exit-code")


def test_hf_and_lemonade_cache() -> None:
    uses = "- run: |\n    lemonade-server pull Qwen3-0.6B-GGUF"
    found = rules_at(wf(job(steps=uses)))
    assert ("hf-cache-outside-workdir", 5) in found and ("lemonade-cache-outside-workdir", 5) in found
    covered = "t:\n  runs-on: stx\n  timeout-minutes: 10\n  env:\n    HF_HOME: ${{ github.workspace }}\\hf\n" \
              "    LEMONADE_CACHE_DIR: .\\ci-cache\n  steps:\n    - run: lemonade-server pull x\n"
    found = rules_at(wf(covered))
    assert not {r for r, _ in found} & {"hf-cache-outside-workdir", "lemonade-cache-outside-workdir"}
    too_late = "- run: |\n    lemonade-server pull x\n    $env:HF_HOME = \".\\hf\""
    assert ("hf-cache-outside-workdir", 5) in rules_at(wf(job(steps=too_late)))
    wrong_env_file = "- run: echo \"HF_HOME=.\\hf\" >> $GITHUB_ENV\n- env:\n    HF_HOME: ${{ env.HF_HOME }}\n" \
                     "  run: huggingface-cli download x"
    assert ("hf-cache-outside-workdir", 5) in rules_at(wf(job(steps=wrong_env_file)))
    right_env_file = wrong_env_file.replace("$GITHUB_ENV", "$env:GITHUB_ENV")
    assert ("hf-cache-outside-workdir", 5) not in rules_at(wf(job(steps=right_env_file)))
    script = "- run: .\\scripts\\start-lemonade.ps1"
    assert ("lemonade-cache-outside-workdir", 5) not in rules_at(wf(job(steps=script)))


def test_lemonade_cache_flag() -> None:
    flagged = "- run: lemonade -d .\\ci-cache -i model oga-load --device npu"
    found = rules_at(wf(job(steps=flagged)))
    assert ("lemonade-cache-flag", 9) in found
    assert ("lemonade-cache-outside-workdir", 5) not in found  # -d inside the work dir satisfies it


def test_job_fanout_counts_across_files_and_matrices() -> None:
    pr_head = HEAD.replace("workflow_dispatch", "pull_request")
    three = "".join(job().replace("t:", f"t{i}:") + "\n" for i in range(3))
    files = {"a.yml": wf(three, pr_head), "b.yml": wf(three, pr_head)}
    results = lint_files(files)
    assert [f.line for f in results["a.yml"].findings if f.rule == "job-fanout"] == [3]
    assert [f.line for f in results["b.yml"].findings if f.rule == "job-fanout"] == [3]
    assert not [f for f in lint_text(wf(three, pr_head)) if f.rule == "job-fanout"]
    matrix = "t:\n  runs-on: stx\n  timeout-minutes: 5\n  strategy:\n    matrix:\n      a: [1, 2, 3]\n" \
             "      b: [x, y]\n      exclude:\n        - a: 1\n          b: x\n  steps:\n    - run: echo npu\n"
    assert [f.rule for f in lint_text(wf(matrix, pr_head))].count("job-fanout") == 1  # 5 runs > 4


def test_parse_error_stops_other_rules() -> None:
    assert [f.rule for f in lint_text("name: x\njobs:\n  t: [\n")] == ["parse-error"]


def test_findings_inside_run_blocks_point_at_the_script_line() -> None:
    text = wf(job(steps="- name: s\n  run: |\n    echo npu\n\n    conda create -n bad -y"))
    [finding] = only(text, "named-conda-env")
    assert (finding.line, finding.column) == (13, 11)
    assert text.splitlines()[finding.line - 1].strip() == "conda create -n bad -y"


# ---- suppressions and configuration -----------------------------------------------------------

def test_inline_suppression_on_the_line_or_above() -> None:
    same = wf(job(steps="- run: conda create -n x -y  # nimbys: ignore[named-conda-env] legacy"))
    assert not only(same, "named-conda-env")
    above = wf(job(steps="- run: |\n    # nimbys: ignore[named-conda-env, persistent-install]\n    conda create -n x"))
    assert not only(above, "named-conda-env")
    other = wf(job(steps="- run: conda create -n x -y  # nimbys: ignore[pip-outside-env]"))
    assert only(other, "named-conda-env")


def test_configuration_file() -> None:
    config = load_config("rules:\n  missing-timeout: off\n  generic-job-on-pool: warning\npool-labels: [gpu-pool]\n"
                         "timeouts:\n  notice-above: 20\nfanout-limit: 1\nkeywords: [cuda]\n")
    text = wf(job(runs_on="gpu-pool", extra="timeout-minutes: 18", steps="- run: echo npu"))
    found = {(f.rule, f.severity) for f in lint_text(text, config=config)}
    assert ("generic-job-on-pool", Severity.WARNING) in found  # npu is no keyword any more
    assert not {r for r, _ in found} & {"missing-timeout", "long-timeout"}
    assert lint_files({"w.yml": wf(job())}, config)["w.yml"].nimbys_jobs == []  # stx is not the pool here
    for bad, words in [("rules: {nope: off}", "unknown rule"), ("rules: {missing-emoji: loud}", "expected error"),
                       ("colour: red", "unknown keys"), ("- a list", "mapping"), ("fanout-limit: -1", "whole"),
                       ("a: [", "not valid YAML")]:
        with pytest.raises(ConfigError, match=words):
            load_config(bad)


def test_every_rule_has_help_and_a_guideline() -> None:
    assert len(RULES) == 14
    for rule in RULES.values():
        assert rule.help and rule.guideline
