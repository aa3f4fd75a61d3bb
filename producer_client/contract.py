"""The wire contract: jobs in, results out, as versioned JSON.

These pydantic models are the one schema; ``routeq schema`` prints their JSON Schema so a
non-Python producer can enqueue and read results. Unknown fields are rejected where documents are
written (a misspelt ``contxt`` must not be silently dropped; a worker never writes a field the
schema lacks); free-form data goes in ``context.tags``, ``params`` pass-through is explicit, and
``metadata`` is echoed back untouched. Readers are lenient instead: :func:`parse_result` drops
fields it does not know, so a newer worker can add fields during a rolling upgrade without
breaking older producers.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any, Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

SCHEMA_VERSION: Literal[1] = 1

JobId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
Role = Literal["system", "developer", "user", "assistant", "tool"]
Status = Literal["succeeded", "failed", "rejected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Message(BaseModel):
    """An OpenAI-style chat message; extra keys (``name``, ``tool_call_id`` …) pass through."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    role: Role
    content: str | list[dict[str, JsonValue]] | None = None
    tool_calls: list[dict[str, JsonValue]] | None = None


class RoutingContext(_Strict):
    """What the rules route on. Missing fields make conditions on them not match."""

    user_id: str | None = None
    tenant: str | None = None
    user_tier: str | None = Field(default=None, description="free | basic | pro | enterprise")
    task_type: str | None = Field(
        default=None, description="chat | code | analysis | classification | …; 'auto' or null to classify"
    )
    needs_tools: bool = False
    needs_vision: bool = False
    max_latency_ms: int | None = Field(default=None, gt=0)
    prompt_tokens_est: int | None = Field(default=None, ge=0)
    budget_remaining: float | None = Field(
        default=None, description="remaining budget (USD) supplied by the producer, for rules without budgets"
    )
    tags: dict[str, JsonValue] = Field(default_factory=dict)


class Params(_Strict):
    """Request parameters forwarded to OpenRouter. ``max_tokens`` can only lower the rule's cap."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    response_format: dict[str, JsonValue] | None = None
    tools: list[dict[str, JsonValue]] | None = None
    tool_choice: str | dict[str, JsonValue] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, JsonValue] | None = None

    def upstream(self) -> dict[str, Any]:
        """The set parameters, minus ``max_tokens`` (the router decides the cap)."""
        return self.model_dump(exclude_none=True, exclude={"max_tokens"})


class Job(_Strict):
    """A completion job as a producer submits it."""

    v: Literal[1] = SCHEMA_VERSION
    messages: list[Message] = Field(min_length=1)
    context: RoutingContext = Field(default_factory=RoutingContext)
    params: Params = Field(default_factory=Params)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ErrorInfo(_Strict):
    type: str = Field(description="invalid_job | budget_exceeded | upstream_error | no_eligible_model | …")
    message: str
    retryable: bool = False
    details: dict[str, JsonValue] | None = None


class AttemptInfo(_Strict):
    model: str
    models: list[str] = Field(default_factory=list)
    status: int | None = None
    error_type: str | None = None
    error: str | None = None
    latency_ms: int = 0
    retry_after_s: float | None = None
    served_model: str | None = None
    outcome_unknown: bool = Field(
        default=False, description="sent, but no answer came back: it may be billed (charged its worst case)"
    )


class TraceItem(_Strict):
    rule: str
    matched: bool
    why: str


class Skip(_Strict):
    model: str
    reason: str


class ExperimentInfo(_Strict):
    name: str
    variant: str
    unit_hash: str = Field(description="sha256 of the unit's value (the value itself is never stored)")
    unit: str = Field(description="the context path the unit came from, or 'job_id' when the job had none")


class EscalationStep(_Strict):
    """One step of a validated cascade: the model asked and why its answer was not accepted."""

    model: str
    accepted: bool
    reason: str
    cost_usd: str = "0.000000000"


class Routing(_Strict):
    rule: str
    rules_version: str = Field(description="sha256 of the rules document that decided")
    rules_number: int | None = Field(
        default=None, description="its version number in Redis (null: rules read from a file)"
    )
    task_type: str | None = None
    task_type_source: Literal["context", "classifier", "none"] = "none"
    model: str
    chain: list[str]
    skipped: list[Skip] = Field(default_factory=list)
    max_tokens: int
    model_served: str | None = None
    provider: str | None = None
    attempts: list[AttemptInfo] = Field(default_factory=list)
    trace: list[TraceItem] = Field(default_factory=list)
    experiment: ExperimentInfo | None = None
    escalations: list[EscalationStep] = Field(default_factory=list)


class Usage(_Strict):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: str = Field(default="0.000000000", description="exact decimal string, USD")
    cost_source: Literal["usage.cost", "catalog", "unknown_outcome", "none"] = "none"


class BudgetLineInfo(_Strict):
    name: str
    scope: str
    window: str
    spent_usd: str
    reserved_usd: str
    limit_usd: str


class Timing(_Strict):
    enqueued_at: str | None = None
    started_at: str
    finished_at: str
    queue_ms: int | None = None
    upstream_ms: int = 0
    total_ms: int = 0


class Result(_Strict):
    """What the worker writes at ``{prefix}result:{job_id}``."""

    v: Literal[1] = SCHEMA_VERSION
    job_id: str
    status: Status
    content: str | None = None
    message: dict[str, JsonValue] | None = None
    error: ErrorInfo | None = None
    routing: Routing | None = None
    usage: Usage | None = None
    budget: list[BudgetLineInfo] = Field(default_factory=list)
    timing: Timing
    job_try: int = 1
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def parse_result(raw: bytes | str) -> Result:
    """A result document as a reader takes it: fields this version does not know are dropped."""
    doc = orjson.loads(raw)
    return Result.model_validate(_known(doc, Result))


def _known(value: Any, model: type[BaseModel]) -> Any:
    if not isinstance(value, dict):
        return value
    shapes = _shapes(model)
    out = {}
    for key, item in value.items():
        if key not in shapes:
            continue
        nested, in_list = shapes[key]
        if nested is not None and in_list and isinstance(item, list):
            item = [_known(x, nested) for x in item]
        elif nested is not None:
            item = _known(item, nested)
        out[key] = item
    return out


@cache
def _shapes(model: type[BaseModel]) -> dict[str, tuple[type[BaseModel] | None, bool]]:
    """Per field: the model it nests (directly, optionally, or as a list's items), and whether in a list."""
    shapes: dict[str, tuple[type[BaseModel] | None, bool]] = {}
    for name, info in model.model_fields.items():
        shapes[name] = _nested(info.annotation)
    return shapes


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args:
        inner, _ = _nested(args[0])
        return inner, inner is not None
    if origin in (Union, types.UnionType):
        for arg in args:
            inner, in_list = _nested(arg)
            if inner is not None:
                return inner, in_list
    return None, False


def json_schemas() -> dict[str, Any]:
    """JSON Schema of the job and the result, for non-Python producers."""
    return {
        "version": SCHEMA_VERSION,
        "job": Job.model_json_schema(),
        "result": Result.model_json_schema(),
    }
