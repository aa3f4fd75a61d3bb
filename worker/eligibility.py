"""Which models of a rule's chain can serve this request, per the model catalog.

Dropping a model here is cheaper and clearer than letting OpenRouter fail it: a model without
tool support, image input, structured outputs (for a job that asks for a ``json_schema`` response
format), or room for the prompt plus ``max_tokens`` is skipped with a reason
that lands in the routing trace. Models missing from the catalog are kept: the catalog may be
older than OpenRouter's, which will answer for itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from producer_client.contract import Job, Skip
from worker.catalog import Catalog


@dataclass(frozen=True)
class Needs:
    tools: bool
    vision: bool
    prompt_tokens: int
    max_tokens: int
    structured: bool = False  # a json_schema response format: only models with structured outputs


def wants_structured_outputs(job: Job) -> bool:
    """A ``json_schema`` response format needs a model with structured outputs."""
    response_format = job.params.response_format
    return response_format is not None and response_format.get("type") == "json_schema"


def needs_of(job: Job, *, prompt_tokens: int, max_tokens: int) -> Needs:
    images = any(
        isinstance(m.content, list) and any(p.get("type") == "image_url" for p in m.content)
        for m in job.messages
    )
    return Needs(
        tools=job.context.needs_tools or bool(job.params.tools),
        vision=job.context.needs_vision or images,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        structured=wants_structured_outputs(job),
    )


def filter_chain(chain: Sequence[str], catalog: Catalog, needs: Needs) -> tuple[list[str], list[Skip]]:
    """The usable models in order, and a reason for each one dropped."""
    keep: list[str] = []
    skipped: list[Skip] = []
    for model in chain:
        reason = _cannot_serve(model, catalog, needs)
        if reason is None:
            keep.append(model)
        else:
            skipped.append(Skip(model=model, reason=reason))
    return keep, skipped


def _cannot_serve(model: str, catalog: Catalog, needs: Needs) -> str | None:
    info = catalog.get(model)
    if info is None:
        return None
    if needs.tools and not info.supports_tools:
        return "no tool support"
    if needs.vision and "image" not in info.input_modalities:
        return "no image input"
    if needs.structured and not info.supports_structured_outputs:
        return "no structured outputs"
    if info.context_length and needs.prompt_tokens + needs.max_tokens > info.context_length:
        return (
            f"context {info.context_length} < prompt ~{needs.prompt_tokens} + max_tokens {needs.max_tokens}"
        )
    return None
