"""``routeq rules push|list|show|diff|activate|status|audit`` as real processes on a private Redis."""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from producer_client.keys import Keys
from tests.support.procs import REPO, base_env

pytestmark = pytest.mark.integration

KEYS = Keys()


def routeq(redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args, "--redis", redis_url],
                          cwd=REPO, env=base_env(**env), capture_output=True, text=True, timeout=60)


def ok_json(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


def json_lines(out: subprocess.CompletedProcess[str]) -> list[Any]:
    assert out.returncode == 0, out.stderr
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def contents(r: redis.Redis) -> dict[bytes, Any]:
    """Every key with its value, to prove that nothing changed."""
    out: dict[bytes, Any] = {}
    for key in r.scan_iter():
        kind = r.type(key)
        out[key] = (r.hgetall(key) if kind == b"hash" else r.xrange(key) if kind == b"stream"
                    else r.get(key))
    return out


def rules_file(tmp: Path, name: str, max_tokens: int, **changes: Any) -> Path:
    doc: dict[str, Any] = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["defaults"] = {"max_tokens": max_tokens}
    doc.update(changes)
    path = tmp / name
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def test_push_list_show_activate_and_roll_back(tmp_path: Path, redis_url: str) -> None:
    a, b = rules_file(tmp_path, "a.json", 100), rules_file(tmp_path, "b.json", 200)
    start = time.time()
    first = ok_json(routeq(redis_url, "rules", "push", str(a), "--message", "cheap", "--by", "alice"))
    second = ok_json(routeq(redis_url, "rules", "push", str(b), "--activate", "--expect", "0"))
    assert first["version"] == 1 and first["active"] is False and first["hash"].startswith("sha256:")
    assert second["version"] == 2 and second["active"] is True and second["hash"] != first["hash"]
    check = subprocess.run([sys.executable, "-m", "worker.cli.main", "rules", "check", str(a)],
                           cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=60)
    assert first["hash"] in check.stdout  # the same version hash `rules check` prints

    listed = json_lines(routeq(redis_url, "rules", "list", "--json"))
    assert [(v["version"], v["active"], v["by"], v["message"]) for v in listed] == [
        (2, True, getpass.getuser(), ""), (1, False, "alice", "cheap")]
    assert [v["hash"] for v in listed] == [second["hash"], first["hash"]]
    created = datetime.fromisoformat(listed[1]["created"]).timestamp()
    assert start - 1 <= created <= time.time()
    table = routeq(redis_url, "rules", "list").stdout.splitlines()
    assert table[1].lstrip().startswith("*") and " 2 " in table[1] and "cheap" in table[2]

    assert ok_json(routeq(redis_url, "rules", "show")) == orjson.loads(b.read_bytes())
    assert ok_json(routeq(redis_url, "rules", "show", "1")) == orjson.loads(a.read_bytes())

    back = ok_json(routeq(redis_url, "rules", "activate", "1", "--expect", "2", "--by", "oncall"))
    assert back == {"version": 1, "previous": 2}
    assert ok_json(routeq(redis_url, "rules", "show")) == orjson.loads(a.read_bytes())

    audit = json_lines(routeq(redis_url, "rules", "audit", "--json"))
    assert [(e["event"], e["version"], e["previous"], e["by"]) for e in audit] == [
        ("activate", 1, 2, "oncall"), ("activate", 2, None, getpass.getuser()),
        ("push", 2, None, getpass.getuser()), ("push", 1, None, "alice")]
    assert len(json_lines(routeq(redis_url, "rules", "audit", "--json", "--limit", "1"))) == 1


def test_an_invalid_file_stores_nothing_and_shows_every_problem(tmp_path: Path, redis_url: str) -> None:
    doc: dict[str, Any] = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["rules"][0]["priority"] = "first"
    doc["rules"][1]["model"] = "nobody/no-such-model"  # not in the model catalog
    doc["rules"][2]["conditions"] = {}
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(doc))
    out = routeq(redis_url, "rules", "push", str(bad), "--activate")
    assert out.returncode == 1 and out.stdout == ""
    assert "3 problems" in out.stderr
    for path in ("$.rules[0].priority", "$.rules[1].model", "$.rules[2].conditions"):
        assert path in out.stderr
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_a_lost_expect_exits_3_and_changes_nothing(tmp_path: Path, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, "a.json", 100)), "--activate"))
    before = contents(r)
    for args in (["push", str(rules_file(tmp_path, "b.json", 200)), "--expect", "0"],
                 ["activate", "1", "--expect", "5"]):
        out = routeq(redis_url, "rules", *args)
        assert out.returncode == 3 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and "the active version is 1" in out.stderr
    assert contents(r) == before

    unknown = routeq(redis_url, "rules", "activate", "9")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "9" in unknown.stderr


def test_show_without_an_active_version_is_one_line(redis_url: str) -> None:
    out = routeq(redis_url, "rules", "show")
    assert out.returncode == 1 and out.stdout == "" and out.stderr.count("\n") == 1


def test_parallel_pushes_with_the_same_expect_let_exactly_one_win(tmp_path: Path, redis_url: str) -> None:
    ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, "base.json", 1)), "--activate"))
    n = 6
    files = [rules_file(tmp_path, f"r{i}.json", 10 + i) for i in range(n)]
    argv = [sys.executable, "-m", "worker.cli.main", "rules", "push", "--activate", "--expect", "1"]
    procs = [subprocess.Popen([*argv, str(f), "--by", f"op{i}", "--redis", redis_url], cwd=REPO,
                              env=base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, f in enumerate(files)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0] + [3] * (n - 1), results
    (winner,) = [orjson.loads(out) for code, out, _ in results if code == 0]
    assert winner == {"version": 2, "hash": winner["hash"], "active": True}
    listed = json_lines(routeq(redis_url, "rules", "list", "--json"))
    assert [(v["version"], v["active"]) for v in listed] == [(2, True), (1, False)]


def test_diff_between_versions_and_against_a_file(tmp_path: Path, redis_url: str) -> None:
    ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, "a.json", 100)), "--activate"))
    b = rules_file(tmp_path, "b.json", 200, timezone="Europe/Paris")
    ok_json(routeq(redis_url, "rules", "push", str(b)))
    out = routeq(redis_url, "rules", "diff", "1", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        "settings:", '  ~ timezone: "UTC" → "Europe/Paris"', "defaults:", "  ~ max_tokens: 100 → 200"]

    doc: dict[str, Any] = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["defaults"] = {"max_tokens": 100}
    doc["rules"] = [r for r in doc["rules"] if r["name"] != "low-latency"]
    doc["rules"][-1]["fallbacks"] = ["budget", "free"]
    candidate = tmp_path / "candidate.json"
    candidate.write_bytes(orjson.dumps(doc))
    out = routeq(redis_url, "rules", "diff", "active", str(candidate))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        "rules:", "  - low-latency", "  ~ default", '      fallbacks: ["budget"] → ["budget","free"]']
    as_json = ok_json(routeq(redis_url, "rules", "diff", "1", str(candidate), "--json"))
    assert {(c["name"], c["kind"]) for c in as_json["changes"]} == {("low-latency", "removed"),
                                                                    ("default", "changed")}
    missing = routeq(redis_url, "rules", "diff", "1", "7")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_status_shows_each_worker_and_flags_the_ones_off_the_active_version(
    tmp_path: Path, redis_url: str
) -> None:
    for i, activate in ((1, False), (2, True)):
        args = ["--activate"] if activate else []
        ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, f"{i}.json", i)), *args,
                       "--message", f"m{i}", "--by", "alice"))
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    now_ms = int(now * 1000)
    beats: dict[str, dict[str, Any]] = {
        "w-on": {"host": "h1", "beat_ms": now_ms, "rules_number": 2, "rules_version": "sha256:aa",
                 "rules_since": now - 5, "rules_error": None},
        "w-old": {"host": "h2", "beat_ms": now_ms - 1, "rules_number": 1, "rules_version": "sha256:bb",
                  "rules_since": now - 60,
                  "rules_error": {"number": 2, "hash": "sha256:aa", "error": "unknown model x/y"}},
    }
    for name, beat in beats.items():
        r.set(KEYS.worker(name), orjson.dumps(beat), px=30_000)
        r.zadd(KEYS.workers, {name: beat["beat_ms"]})
    r.zadd(KEYS.workers, {"w-lost": int(now * 1000) - 120_000})  # its heartbeat key expired

    status = ok_json(routeq(redis_url, "rules", "status", "--json"))
    active = status["active"]
    assert (active["version"], active["message"], active["by"]) == (2, "m2", "alice")
    assert now - 60 <= datetime.fromisoformat(active["activated_at"]).timestamp() <= time.time()
    workers = {w["name"]: w for w in status["workers"]}
    on = workers["w-on"]
    assert (on["state"], on["on_active"], on["host"]) == ("live", True, "h1")
    assert (workers["w-old"]["on_active"], workers["w-old"]["rules_number"]) == (False, 1)
    assert workers["w-old"]["rules_error"]["error"] == "unknown model x/y"
    assert (workers["w-lost"]["state"], workers["w-lost"]["on_active"]) == ("lost", None)

    lines = routeq(redis_url, "rules", "status").stdout.splitlines()
    assert lines[0].startswith("active: v2 ")
    rows = {line.split()[0]: line for line in lines if line.startswith("w-")}
    assert "NOT on the active version" in rows["w-old"] and "v2: unknown model x/y" in rows["w-old"]
    assert "NOT" not in rows["w-on"] and " v2 " in rows["w-on"]
    assert " lost " in rows["w-lost"]


def test_the_prefix_comes_from_routeq_prefix(tmp_path: Path, redis_url: str) -> None:
    ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, "a.json", 1)), "--activate",
                   ROUTEQ_PREFIX="staging:"))
    r = redis.Redis.from_url(redis_url)
    assert r.get(Keys("staging:").rules_active) == b"1" and r.get(KEYS.rules_active) is None
    out = routeq(redis_url, "rules", "show")
    assert out.returncode == 1  # nothing active under the default prefix


def test_route_active_previews_the_fleets_version_and_push_checks_the_fleets_catalog(
    tmp_path: Path, redis_url: str
) -> None:
    import asyncio

    from redis.asyncio import Redis

    from worker.catalog import validate_models_json
    from worker.catalog_store import CatalogStore

    v1 = ok_json(routeq(redis_url, "rules", "push", str(rules_file(tmp_path, "a.json", 333)), "--activate"))
    context = '{"user_tier": "pro", "task_type": "chat"}'
    preview = orjson.loads(routeq(redis_url, "route", "--active", "--context", context).stdout)
    from_file = orjson.loads(routeq(redis_url, "route", "--context", context).stdout)
    assert preview["rules_number"] == v1["version"] and preview["max_tokens"] == 333
    assert from_file["rules_number"] is None and from_file["max_tokens"] == 1024

    # The fleet's catalog (active in Redis) lacks a model the file names: the push is refused,
    # though the shipped catalog has the model.
    doc = orjson.loads((REPO / "config" / "models.json").read_bytes())
    doc["data"] = [m for m in doc["data"] if m["id"] != "openai/o1"]

    async def store_catalog() -> None:
        r = Redis.from_url(redis_url)
        try:
            await CatalogStore(r, KEYS).store(validate_models_json(doc).document, (), "test")
        finally:
            await r.aclose()

    asyncio.run(store_catalog())
    naming_o1 = rules_file(tmp_path, "b.json", 400)
    refused = routeq(redis_url, "rules", "push", str(naming_o1))
    assert refused.returncode == 1 and "openai/o1" in refused.stderr, refused.stderr
    assert ok_json(routeq(redis_url, "rules", "list", "--json"))["version"] == v1["version"]
