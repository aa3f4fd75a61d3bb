"""``routeq route`` and ``routeq rules check``, driven through ``worker.cli.main.main``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.cli import main as cli

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "rules.json"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Shipped rules by default; only our commands if a sibling command module cannot import yet."""
    monkeypatch.setenv("ROUTEQ_RULES", str(SHIPPED))
    try:
        for name in cli.COMMAND_MODULES:
            importlib.import_module(name)
    except ImportError:
        monkeypatch.setattr(cli, "COMMAND_MODULES", ("worker.cli.route_cmd", "worker.cli.rules_cmd"))
    yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any], str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines() if line.strip()], err


def test_route_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["route", "--context", '{"user_tier": "pro", "task_type": "code", "budget_remaining": 50}']
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("\n") == 1
    doc = orjson.loads(out)
    assert (doc["rule"], doc["model"], doc["chain"]) == (
        "code-tasks",
        "anthropic/claude-3.5-sonnet",
        ["anthropic/claude-3.5-sonnet", "openai/gpt-4o"],
    )
    assert doc["task_type"] == "code" and doc["task_type_source"] == "context"
    assert [t["rule"] for t in doc["trace"]][-1] == "code-tasks"
    assert doc["rules_version"].startswith("sha256:")


def test_pretty_is_the_same_document_indented(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = '{"user_tier": "free"}'
    cli.main(["route", "--context", ctx])
    plain = capsys.readouterr().out
    cli.main(["route", "--context", ctx, "--pretty"])
    pretty = capsys.readouterr().out
    assert pretty.count("\n") > 5
    assert orjson.loads(pretty) == orjson.loads(plain)


@pytest.mark.parametrize(
    ("context", "prompt", "rule", "task_type", "source"),
    [
        (
            {"user_tier": "pro", "budget_remaining": 9},
            "def f(): return 1  # fix me",
            "code-tasks",
            "code",
            "classifier",
        ),
        (
            {"user_tier": "pro", "budget_remaining": 9, "task_type": "auto"},
            "import os",
            "code-tasks",
            "code",
            "classifier",
        ),
        (
            {"user_tier": "pro", "budget_remaining": 9, "task_type": "chat"},
            "import os",
            "default",
            "chat",
            "context",
        ),
        (
            {"user_tier": "pro", "budget_remaining": 9},
            "Why is the sky blue?",
            "default",
            "analysis",
            "classifier",
        ),
        ({"user_tier": "pro", "budget_remaining": 9}, None, "default", None, "none"),
    ],
)
def test_prompt_is_classified_when_task_type_is_unset(
    capsys: pytest.CaptureFixture[str],
    context: dict[str, Any],
    prompt: str | None,
    rule: str,
    task_type: str | None,
    source: str,
) -> None:
    argv = ["route", "--context", orjson.dumps(context).decode()]
    if prompt is not None:
        argv += ["--prompt", prompt]
    code, [doc], _ = run(capsys, *argv)
    assert (code, doc["rule"], doc["task_type"], doc["task_type_source"]) == (0, rule, task_type, source)
    if prompt is not None:
        assert doc["prompt_tokens_est"] > 7


def test_now_and_rules_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_bytes(
        orjson.dumps(
            {
                "timezone": "Asia/Tokyo",
                "allow_unknown_models": True,
                "rules": [
                    {
                        "name": "office",
                        "priority": 1,
                        "when": {"hour": {"between": [9, 17]}},
                        "model": "a/office",
                    },
                    {"name": "default", "priority": 99, "model": "a/night"},
                ],
            }
        )
    )
    _, [doc], _ = run(
        capsys, "route", "--rules", str(rules), "--context", "{}", "--now", "2026-11-22T01:00:00Z"
    )
    assert doc["rule"] == "office"  # 10:00 in Tokyo
    _, [doc], _ = run(
        capsys, "route", "--rules", str(rules), "--context", "{}", "--now", "2026-11-22T10:00:00+00:00"
    )
    assert doc["rule"] == "default"  # 19:00 in Tokyo


def test_computed_values(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_bytes(
        orjson.dumps(
            {
                "allow_unknown_models": True,
                "rules": [
                    {
                        "name": "broke",
                        "priority": 1,
                        "when": {"budget.remaining": {"lt": 1}},
                        "model": "a/cheap",
                    },
                    {"name": "default", "priority": 99, "model": "a/normal"},
                ]
            }
        )
    )
    argv = ["route", "--rules", str(rules), "--context", "{}"]
    assert run(capsys, *argv, "--computed", '{"budget": {"remaining": 0.2}}')[1][0]["rule"] == "broke"
    assert run(capsys, *argv)[1][0]["rule"] == "default"


def test_contexts_file_prints_one_line_each_and_reports_bad_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = tmp_path / "contexts.jsonl"
    lines.write_text(
        "\n".join(
            [
                '{"user_tier": "free"}',
                "{not json",
                '{"context": {"user_tier": "pro", "budget_remaining": 5}, "prompt": "class Foo: pass"}',
                "",
                "[1, 2]",
                '{"context": "nope"}',
                '{"user_tier": "enterprise", "budget_remaining": 0}',
            ]
        )
        + "\n"
    )
    code, docs, _ = run(capsys, "route", "--contexts", str(lines))
    assert code == 1
    assert [d.get("rule") or d["line"] for d in docs] == [
        "free-tier",
        2,
        "code-tasks",
        5,
        6,
        "enterprise-default",
    ]
    assert "invalid JSON" in docs[1]["error"]
    assert "expected a JSON object" in docs[3]["error"]
    assert '"context" must be an object' in docs[4]["error"]


def test_contexts_all_good_exits_zero_and_default_prompt_applies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = tmp_path / "ok.jsonl"
    lines.write_text('{"user_tier": "pro", "budget_remaining": 5}\n{"context": {"user_tier": "free"}}\n')
    code, docs, _ = run(capsys, "route", "--contexts", str(lines), "--prompt", "import this")
    assert code == 0
    assert [(d["rule"], d["task_type"]) for d in docs] == [("code-tasks", "code"), ("free-tier", "code")]


def test_contexts_file_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, docs, err = run(capsys, "route", "--contexts", str(tmp_path / "nope.jsonl"))
    assert (code, docs) == (2, [])
    assert "cannot read" in err


def test_bad_context_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, docs, err = run(capsys, "route", "--context", "[1]")
    assert (code, docs) == (2, [])
    assert "expected a JSON object" in err
    code, _, err = run(capsys, "route", "--context", "{oops")
    assert code == 2 and "invalid JSON" in err
    # The context is held to the job contract, as submit holds it: same field, same message.
    code, _, err = run(capsys, "route", "--context", '{"max_latency_ms": "fast"}')
    assert code == 2 and "context.max_latency_ms" in err


def test_bad_now_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["route", "--context", "{}", "--now", "yesterday"])
    assert info.value.code == 2
    assert "ISO 8601" in capsys.readouterr().err


def test_rules_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["rules", "check"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ok: 8 rules, version sha256:")
    code = cli.main(["rules", "check", str(SHIPPED)])
    assert code == 0 and capsys.readouterr().out == out


def test_rules_check_reports_every_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(
        orjson.dumps(
            {
                "rules": [
                    {"name": "a", "priority": 1, "when": {"user_tier": {"gtx": 1}}, "model": "nope"},
                    {"name": "b"},
                ]
            }
        )
    )
    code = cli.main(["rules", "check", str(bad)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == f"{bad}: 4 problems"
    assert "$.rules[0].when.user_tier.gtx: unknown operator 'gtx'" in err
    assert "$.rules[0].model: not a model id" in err
    assert "$.rules[1].priority: expected an integer" in err
    assert '$.rules[1]: expected exactly one of "model" or "tier"' in err
    # and route refuses to run on it
    code = cli.main(["route", "--rules", str(bad), "--context", "{}"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert "gtx" in err
