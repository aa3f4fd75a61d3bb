"""What the emulator's ``GET /api/v1/models`` serves: the catalog, or a broken body on demand.

``PUT /_emulator/models`` takes one of::

    {"mode": "normal"}                         # the emulator's catalog, as OpenRouter serves it
    {"mode": "malformed", "kind": "truncated"} # 200 with a body that is not a models document:
                                               # "truncated" JSON, an "html" page, an "array" root
    {"mode": "partial", "keep": 0.5}           # the first half of the entries; total_count says all
    {"mode": "hostile", ...}                   # see below
    {"mode": "empty"}                          # {"data": [], "total_count": 0}
    {"mode": "error", "status": 503}           # an OpenRouter error body with that status
    {"body": {...}, "status": 200}             # exactly this JSON (any value)
    {"status": 503}                            # same as mode "error"

``hostile`` serves the real entries plus everything a validator must refuse, each flaw named in
the entry's ``name`` (``HOSTILE_FLAWS``): negative, non-numeric, NaN, huge, float, missing
prices, no pricing, odd or missing ids, missing, negative or non-integer context lengths,
non-object entries and a second entry under a real id at another price. Options (defaults):
``"free": true`` also serves the dearest paid model (or the id given) at price 0;
``"bad_entries": true`` adds the flawed entries; ``"pad_mb": 0`` pads the first entry's
description to that many MB; ``"non_list": false`` serves ``data`` as an object instead.
``POST /_emulator/reset`` goes back to normal.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import orjson

from worker.emulator.errors import ApiError
from worker.emulator.http import Response

MODES: Final = ("normal", "malformed", "partial", "hostile", "empty", "error", "body")
MALFORMED_KINDS: Final = ("truncated", "html", "array")
MAX_PAD_MB: Final = 64

#: name → entry: every flaw ``hostile`` serves (ids are unique so each refusal can be matched).
HOSTILE_FLAWS: Final[Mapping[str, Any]] = MappingProxyType({
    "negative price": {"id": "hostile/negative-price", "pricing": {"prompt": "-0.000001", "completion": "0"}},
    "non-numeric price": {"id": "hostile/non-numeric", "pricing": {"prompt": "cheap", "completion": "0"}},
    "NaN price": {"id": "hostile/nan", "pricing": {"prompt": "NaN", "completion": "NaN"}},
    "underscore price": {"id": "hostile/underscore", "pricing": {"prompt": "0.000_001", "completion": "0"}},
    "huge price": {"id": "hostile/huge-price", "pricing": {"prompt": "1000000", "completion": "1"}},
    "float price": {"id": "hostile/float-price", "pricing": {"prompt": 1e-06, "completion": "0.000002"}},
    "missing prompt price": {"id": "hostile/no-prompt", "pricing": {"completion": "0.000002"}},
    "half router": {"id": "hostile/half-router", "pricing": {"prompt": "-1", "completion": "0.000002"}},
    "no pricing": {"id": "hostile/no-pricing", "pricing": None},
    "odd id": {"id": "hostile/<script>alert(1)</script>"},
    "escape id": {"id": "\u001b[31mhostile/red\u001b[0m"},
    "no author": {"id": "no-slash-model"},
    "missing id": {},
    "numeric id": {"id": 42},
    "no context": {"id": "hostile/no-context", "context_length": None, "top_provider": {}},
    "negative context": {"id": "hostile/negative-context", "context_length": -8192},
    "float context": {"id": "hostile/float-context", "context_length": 8192.5},
})
_GOOD_PRICING: Final = {"prompt": "0.000001", "completion": "0.000002", "request": "0"}
_NON_OBJECTS: Final = ("a string entry", None, 7, ["a", "list"])


class ModelsConfigError(ValueError):
    """A ``PUT /_emulator/models`` document that does not follow this module's docstring."""


@dataclass(frozen=True)
class ModelsConfig:
    mode: str = "normal"
    status: int = 200
    body: Any = None  # mode "body": served as is
    kind: str = "truncated"  # mode "malformed"
    keep: float = 0.5  # mode "partial"
    free: bool | str = True  # mode "hostile": a paid model served free (True: the dearest)
    bad_entries: bool = True
    pad_mb: float = 0.0
    non_list: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, doc: object) -> ModelsConfig:
        if not isinstance(doc, Mapping):
            raise ModelsConfigError("expected a JSON object")
        unknown = set(doc) - {"mode", "status", "body", "kind", "keep", "free", "bad_entries", "pad_mb",
                              "non_list"}
        if unknown:
            raise ModelsConfigError(f"unknown keys: {', '.join(sorted(unknown))}")
        mode = doc.get("mode")
        if mode is None:
            mode = "body" if "body" in doc else "error" if "status" in doc else "normal"
        if mode not in MODES:
            raise ModelsConfigError(f"mode must be one of {', '.join(MODES)}")
        status = doc.get("status", 503 if mode == "error" else 200)
        if type(status) is not int or not 100 <= status <= 599:
            raise ModelsConfigError("status must be an HTTP status code")
        kind = doc.get("kind", "truncated")
        if kind not in MALFORMED_KINDS:
            raise ModelsConfigError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        keep = doc.get("keep", 0.5)
        if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 <= keep <= 1:
            raise ModelsConfigError("keep must be a fraction between 0 and 1")
        free = doc.get("free", True)
        if not isinstance(free, bool | str):
            raise ModelsConfigError("free must be true, false or a model id")
        pad_mb = doc.get("pad_mb", 0)
        if isinstance(pad_mb, bool) or not isinstance(pad_mb, int | float) or not 0 <= pad_mb <= MAX_PAD_MB:
            raise ModelsConfigError(f"pad_mb must be between 0 and {MAX_PAD_MB}")
        flags = {k: doc.get(k, k == "bad_entries") for k in ("bad_entries", "non_list")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise ModelsConfigError("bad_entries and non_list must be booleans")
        if mode == "body" and "body" not in doc:
            raise ModelsConfigError('mode "body" needs a "body"')
        return cls(mode=mode, status=status, body=doc.get("body"), kind=kind, keep=float(keep), free=free,
                   bad_entries=flags["bad_entries"], pad_mb=float(pad_mb), non_list=flags["non_list"],
                   raw=dict(doc))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **{k: v for k, v in self.raw.items() if k != "mode"}}


def models_response(config: ModelsConfig, data: list[Any]) -> Response:
    """The response to ``GET /api/v1/models`` given the catalog's entries ``data``."""
    if config.mode == "error":
        return ApiError(config.status, "Service Unavailable" if config.status >= 500 else "Error").response()
    if config.mode == "body":
        return Response(config.status, orjson.dumps(config.body))
    if config.mode == "malformed":
        return _malformed(config.kind, data)
    if config.mode == "empty":
        return _document([], total=0)
    if config.mode == "partial":
        return _document(data[: int(len(data) * config.keep)], total=len(data))
    if config.mode == "hostile":
        return _hostile(config, data)
    return _document(data)


def _document(data: Any, *, total: int | None = None) -> Response:
    count = total if total is not None else len(data)
    return Response(200, orjson.dumps({"data": data, "total_count": count, "links": {"next": None}}))


def _malformed(kind: str, data: list[Any]) -> Response:
    if kind == "html":
        page = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
        return Response(200, page, content_type="text/html")
    if kind == "array":
        return Response(200, orjson.dumps(data))
    full = orjson.dumps({"data": data, "total_count": len(data)})
    return Response(200, full[: len(full) // 2])


def _hostile(config: ModelsConfig, data: list[Any]) -> Response:
    entries = copy.deepcopy(data)
    if config.free is not False:
        victim = _victim(entries, config.free)
        if victim is not None:
            victim["pricing"] = {key: "0" for key in victim.get("pricing", {})}
    if config.pad_mb and entries:
        entries[0]["description"] = "x" * int(config.pad_mb * 1024 * 1024)
    if config.bad_entries:
        entries.extend(_flawed(data))
    if config.non_list:
        return Response(200, orjson.dumps({"data": {str(i): e for i, e in enumerate(entries)}}))
    return _document(entries)


def _flawed(data: list[Any]) -> list[Any]:
    flawed: list[Any] = []
    for name, entry in HOSTILE_FLAWS.items():
        flawed.append({"name": name, "context_length": 8192, "pricing": dict(_GOOD_PRICING),
                       **copy.deepcopy(entry)})
    if data and isinstance(data[0], dict):  # a second entry under a real id, at another price
        twin = copy.deepcopy(data[0])
        twin["name"] = "duplicate id"
        twin["pricing"] = {"prompt": "0.000000001", "completion": "0.000000001"}
        flawed.append(twin)
    flawed.extend(_NON_OBJECTS)
    return flawed


def _victim(entries: list[Any], wanted: bool | str) -> dict[str, Any] | None:
    """The entry to serve free: the id asked for, else the one with the dearest completion price."""
    best: tuple[Decimal, dict[str, Any]] | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if isinstance(wanted, str):
            if entry.get("id") == wanted:
                return entry
            continue
        try:
            price = Decimal(str(entry.get("pricing", {}).get("completion")))
        except ArithmeticError:
            continue
        if price > 0 and (best is None or price > best[0]):
            best = (price, entry)
    return best[1] if best is not None else None
