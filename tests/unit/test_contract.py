import orjson
import pytest

from producer_client.contract import Job, json_schemas
from producer_client.errors import InvalidJob
from producer_client.jobs import build_job, parse_job


def test_misspelt_top_level_field_is_named() -> None:
    with pytest.raises(InvalidJob) as err:
        parse_job({"messages": [{"role": "user", "content": "hi"}], "contxt": {}})
    assert "contxt" in str(err.value) and "unknown field" in str(err.value)


def test_misspelt_context_field_is_named() -> None:
    with pytest.raises(InvalidJob, match=r"context\.user_teir"):
        build_job(prompt="x", context={"user_teir": "pro"})


def test_free_form_tags_are_accepted() -> None:
    job = build_job(prompt="x", context={"tags": {"region": "eu", "nested": {"a": [1, 2]}}})
    assert job.context.tags["region"] == "eu"


def test_wrong_types_are_not_coerced() -> None:
    with pytest.raises(InvalidJob, match=r"context\.max_latency_ms"):
        parse_job(
            orjson.dumps(
                {"messages": [{"role": "user", "content": "x"}], "context": {"max_latency_ms": "500"}}
            )
        )
    with pytest.raises(InvalidJob, match=r"context\.needs_tools"):
        build_job(prompt="x", context={"needs_tools": "yes"})


def test_messages_required_and_roles_checked() -> None:
    with pytest.raises(InvalidJob, match="messages"):
        parse_job({"messages": []})
    with pytest.raises(InvalidJob, match="role"):
        parse_job({"messages": [{"role": "wizard", "content": "x"}]})


def test_job_round_trips_through_json() -> None:
    job = build_job(
        prompt="hello",
        context={"user_tier": "pro"},
        params={"temperature": 0.2},
        metadata={"order_id": "123"},
    )
    again = Job.model_validate_json(job.model_dump_json())
    assert again == job


def test_schema_covers_job_and_result() -> None:
    schemas = json_schemas()
    assert "messages" in schemas["job"]["properties"]
    assert "routing" in schemas["result"]["properties"]
    assert schemas["job"]["additionalProperties"] is False
