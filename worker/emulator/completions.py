"""``POST /api/v1/chat/completions``: OpenRouter's native model fallback, costs and faults.

``model`` is tried first, then ``models`` in order; any error on a model (an injected fault, a
context-length or credit pre-flight failure) moves on to the next one, and when all fail the
LAST model's error is returned with ``error.metadata.previous_errors`` listing every failed
attempt. Headers such as Retry-After therefore come only from that last error.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.catalog import Catalog, ModelInfo
from worker.emulator import errors
from worker.emulator.account import Account
from worker.emulator.content import Reply, make_reply
from worker.emulator.errors import ApiError, Rejected
from worker.emulator.faults import Fault, FaultInjector, FaultKind
from worker.emulator.http import Request, Response
from worker.emulator.request import CompletionRequest, parse_completion, parse_json
from worker.emulator.stats import AttemptRecord, RequestRecord, Stats
from worker.emulator.wire import generation_id, json_response, usd_number

# Upstream spellings of the normalised finish reasons, per provider family.
_NATIVE_FINISH = {
    "Anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "Google AI Studio": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
}


@dataclass(frozen=True, slots=True)
class _Failure:
    model: ModelInfo
    outcome: str
    error: ApiError

    def summary(self) -> dict[str, Any]:
        provider = self.model.provider_name.lower().replace(" ", "-")
        return {
            "model": self.model.id,
            "provider": provider,
            "code": self.error.error_type,
            "status": self.error.status,
        }


class CompletionHandler:
    def __init__(self, catalog: Catalog, faults: FaultInjector, account: Account, stats: Stats) -> None:
        self._catalog = catalog
        self._faults = faults
        self._account = account
        self._stats = stats

    async def __call__(self, request: Request) -> Response:
        received, started = time.time(), time.monotonic()
        self._stats.requests_received += 1
        attempts: list[AttemptRecord] = []
        doc: dict[str, Any] = {}
        served: ModelInfo | None = None
        try:
            self._account.authenticate(request.headers)
            doc = parse_json(request.body)
            completion = parse_completion(doc, self._catalog)
            response, served = await self._route(completion, attempts)
        except Rejected as exc:
            response = exc.error.response()
        self._stats.record(
            RequestRecord(
                received_at=received,
                model=_str_or_none(doc.get("model")),
                models=doc.get("models") if isinstance(doc.get("models"), list) else None,
                max_tokens=_int_or_none(doc.get("max_completion_tokens", doc.get("max_tokens"))),
                status=response.status,
                outcome=attempts[-1].outcome if attempts else "rejected",
                served_model=served.id if served else None,
                provider=served.provider_name if served else None,
                attempts=tuple(attempts),
                latency_ms=round((time.monotonic() - started) * 1000, 3),
                http_referer=request.headers.get("http-referer"),
                x_title=request.headers.get("x-openrouter-title", request.headers.get("x-title")),
            )
        )
        return response

    async def _route(
        self, req: CompletionRequest, attempts: list[AttemptRecord]
    ) -> tuple[Response, ModelInfo | None]:
        failures: list[_Failure] = []
        for model in req.capable_models():
            outcome, error = self._preflight(req, model)
            if error is None:
                fault = self._faults.decide(model.id)
                if fault.delay_s > 0:
                    await asyncio.sleep(fault.delay_s)
                if fault.kind is FaultKind.OK:
                    reply = self._reply(req, model)
                    cost = model.cost_usd(req.prompt_tokens, reply.completion_tokens)
                    self._account.charge(cost)
                    attempts.append(AttemptRecord(model.id, FaultKind.OK.value, 200))
                    return self._success(req, model, reply, cost), model
                outcome, error = fault.kind.value, _fault_error(model, fault)
            attempts.append(AttemptRecord(model.id, outcome, error.status))
            failures.append(_Failure(model, outcome, error))
        return self._final_failure(req, failures)

    def _preflight(self, req: CompletionRequest, model: ModelInfo) -> tuple[str, ApiError | None]:
        if req.prompt_tokens + (req.max_tokens or 0) > model.context_length:
            error = errors.context_too_long(model.context_length, req.prompt_tokens, req.max_tokens or 0)
            return "context_length", error
        return "credit_limit", self._account.preflight(model, req.prompt_tokens, req.max_tokens)

    def _final_failure(
        self, req: CompletionRequest, failures: list[_Failure]
    ) -> tuple[Response, ModelInfo | None]:
        last = failures[-1]
        previous = [f.summary() for f in failures]
        if last.outcome == FaultKind.ERROR_200:
            body = last.error.body(previous)
            return json_response(200, body, [("X-Generation-Id", generation_id())]), None
        if last.outcome == FaultKind.FINISH_ERROR:
            # Zero-completion insurance: a generation that ends in an error is not charged.
            partial = self._reply(req, last.model).partial()
            return self._success(req, last.model, partial, Decimal(0), last.error), last.model
        return last.error.response(previous), None

    def _reply(self, req: CompletionRequest, model: ModelInfo) -> Reply:
        max_tokens = req.max_tokens
        if model.max_completion_tokens is not None:
            max_tokens = min(max_tokens or model.max_completion_tokens, model.max_completion_tokens)
        return make_reply(
            model.id,
            req.messages,
            max_tokens=max_tokens,
            tools=req.tools,
            tool_choice=req.tool_choice,
            response_format=req.response_format,
            accuracy=self._faults.config.accuracy(model.id),
            off_format=self._faults.config.off_format(model.id),
        )

    def _success(
        self,
        req: CompletionRequest,
        model: ModelInfo,
        reply: Reply,
        cost: Decimal,
        error: ApiError | None = None,
    ) -> Response:
        gen_id, created = generation_id(), int(time.time())
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": None,
            "reasoning": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = [call.to_json() for call in reply.tool_calls]
        native = _NATIVE_FINISH.get(model.provider_name, {}).get(reply.finish_reason)
        choice: dict[str, Any] = {
            "logprobs": None,
            "finish_reason": reply.finish_reason,
            "native_finish_reason": native or reply.finish_reason,
            "index": 0,
            "message": message,
        }
        if error is not None:
            choice["error"] = {"code": error.status, "message": error.message, "metadata": error.metadata}
        charged = cost > 0
        prompt_cost = req.prompt_tokens * model.prompt_price if charged else Decimal(0)
        completion_cost = reply.completion_tokens * model.completion_price if charged else Decimal(0)
        body = {
            "id": gen_id,
            "provider": model.provider_name,
            "model": model.id,
            "object": "chat.completion",
            "created": created,
            "choices": [choice],
            "system_fingerprint": _fingerprint(model),
            "usage": {
                "prompt_tokens": req.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": req.prompt_tokens + reply.completion_tokens,
                "cost": usd_number(cost),
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0, "video_tokens": 0},
                "cost_details": {
                    "upstream_inference_cost": None,
                    "upstream_inference_prompt_cost": usd_number(prompt_cost),
                    "upstream_inference_completions_cost": usd_number(completion_cost),
                },
                "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
            },
        }
        return json_response(200, body, [("X-Generation-Id", gen_id)])


def _fault_error(model: ModelInfo, fault: Fault) -> ApiError:
    provider = model.provider_name
    if fault.kind is FaultKind.RATE_LIMIT:
        return errors.rate_limited(model.id, provider, fault.retry_after_s)
    if fault.kind is FaultKind.TIMEOUT:
        return errors.timed_out()
    if fault.kind is FaultKind.ERROR_5XX:
        return errors.provider_error(model.id, provider, fault.status or 502)
    # error_200 and finish_error: the provider failed after OpenRouter committed to HTTP 200.
    return errors.provider_error(model.id, provider, 502)


def _fingerprint(model: ModelInfo) -> str | None:
    if model.provider_name != "OpenAI":
        return None
    return "fp_" + hashlib.sha256(model.id.encode()).hexdigest()[:10]


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
