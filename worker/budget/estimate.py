"""Worst-case cost of one job, the amount a reservation holds before the upstream call.

The chain may fall back to any of its models, so the bound takes the highest prompt price, the
highest completion price and the highest per-request price in the chain (possibly from different
models) and assumes the full ``max_tokens`` is generated. Failed attempts are assumed unbilled
(OpenRouter charges the model that answered). Pure and exact: Decimal in, nano-USD out, rounded up.

A model missing from the catalog has no known price: the caller must not pass it silently; treat
it as the most expensive known model (or refuse the job) before calling this.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Protocol

from producer_client.money import usd_to_nano


class ModelPrices(Protocol):
    """USD per prompt token, per completion token and per request (``worker.catalog.ModelInfo``)."""

    @property
    def prompt_price(self) -> Decimal: ...

    @property
    def completion_price(self) -> Decimal: ...

    @property
    def request_price(self) -> Decimal: ...


def worst_case_nano(prompt_tokens_est: int, max_tokens: int, chain_models: Sequence[ModelPrices]) -> int:
    """prompt * max prompt price + max_tokens * max completion price + max request price, in
    nano-USD rounded up to a whole nano."""
    if prompt_tokens_est < 0 or max_tokens < 0:
        raise ValueError("token counts must be non-negative")
    if not chain_models:
        raise ValueError("the chain has no model to price")
    prompt = max(m.prompt_price for m in chain_models)
    completion = max(m.completion_price for m in chain_models)
    request = max(m.request_price for m in chain_models)
    if min(prompt, completion, request) < 0:
        raise ValueError("negative price in the chain (router pseudo-model?): price it first")
    with localcontext() as ctx:
        ctx.prec = 60  # exact for any realistic token count * price
        total = prompt_tokens_est * prompt + max_tokens * completion + request
        return usd_to_nano(total, round_up=True)
