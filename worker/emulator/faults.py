"""Fault and latency injection for the emulator: configuration and per-attempt decisions.

The same JSON document is read from ``--faults FILE`` and accepted by ``PUT /_emulator/faults``;
every key is optional::

    {
      "seed": 7,                          # seeds random.Random for the probabilities below
      "models": {
        "*": {                            # defaults for every model
          "latency_ms": 0,                # fixed delay of every attempt on the model
          "latency_jitter_ms": 0,         # plus uniform [0, jitter] ms
          "error_5xx": 0.0,               # probability of a 5xx error body ...
          "error_5xx_statuses": [500, 502, 503],   # ... with a status drawn from this list
          "rate_limit": 0.0,              # probability of 429 "Provider returned error"
          "retry_after_s": 1,             # ... with this Retry-After header (seconds)
          "timeout": 0.0,                 # probability of holding the attempt timeout_s, then 408
          "timeout_s": 30,
          "error_200": 0.0,               # probability of HTTP 200 with a top-level error, no choices
          "finish_error": 0.0,            # probability of a 200 choice with finish_reason "error"
          "accuracy": 1.0,                # chance of labelling a classification prompt right
          "off_format": 0.0               # chance of answering one with a sentence, not a label
        },
        "openai/gpt-4o": {"rate_limit": 0.3},  # per-model keys override "*" key by key
        "meta-llama/llama-3.1-8b-instruct": {"accuracy": 0.8}
      },
      "script": {"openai/gpt-4o": ["502", "429", "ok"]},
      "fail_always": ["anthropic/claude-3-haiku"]
    }

Each attempt on a model (the ``model`` and every ``models`` fallback count separately) is
decided in this order: ``fail_always`` (a 502 "Provider returned error") → the next step of the
model's ``script`` → the probabilities, drawn once per attempt (their sum must be ≤ 1).
Script steps: ``"ok"``; a 5xx status such as ``"502"``; ``"429"``/``"rate_limit"``;
``"408"``/``"timeout"``; ``"error_200"``; ``"finish_error"``; ``"error_5xx"`` (first status of
the list). A consumed script falls back to the probabilities. Latency applies to every attempt
whatever its outcome, except a timeout, which holds for ``timeout_s`` instead. Replacing the
configuration (or ``POST /_emulator/reset``) rewinds the scripts and re-seeds the generator.

``accuracy`` and ``off_format`` are not faults: they decide what a successful answer to a
classification prompt says (``content.answered_label``, ``content.is_off_format``), by hash and not
by the seeded generator, so a prompt gets the same answer whatever else the emulator served.
"""

from __future__ import annotations

import enum
import os
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

DEFAULT = "*"


class FaultConfigError(ValueError):
    """A fault document that does not follow the shape in this module's docstring."""


class FaultKind(enum.StrEnum):
    OK = "ok"
    ERROR_5XX = "error_5xx"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    ERROR_200 = "error_200"
    FINISH_ERROR = "finish_error"


# Order in which one uniform draw is matched against the probabilities.
_PROBABILISTIC = (
    FaultKind.ERROR_5XX,
    FaultKind.RATE_LIMIT,
    FaultKind.TIMEOUT,
    FaultKind.ERROR_200,
    FaultKind.FINISH_ERROR,
)


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """Latency and fault probabilities for one model."""

    latency_ms: float = 0
    latency_jitter_ms: float = 0
    error_5xx: float = 0.0
    error_5xx_statuses: tuple[int, ...] = (500, 502, 503)
    rate_limit: float = 0.0
    retry_after_s: int = 1
    timeout: float = 0.0
    timeout_s: float = 30
    error_200: float = 0.0
    finish_error: float = 0.0
    accuracy: float = 1.0
    off_format: float = 0.0

    def __post_init__(self) -> None:
        for kind in _PROBABILISTIC:
            p = getattr(self, kind.value)
            if not 0.0 <= p <= 1.0:
                raise FaultConfigError(f"{kind.value} must be a probability in [0, 1], got {p}")
        if sum(getattr(self, k.value) for k in _PROBABILISTIC) > 1.0 + 1e-9:
            raise FaultConfigError("fault probabilities of one model must sum to at most 1")
        for name in ("accuracy", "off_format"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaultConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if min(self.latency_ms, self.latency_jitter_ms, self.timeout_s, self.retry_after_s) < 0:
            raise FaultConfigError("latencies, timeout_s and retry_after_s must be >= 0")
        if not self.error_5xx_statuses or any(not 500 <= s <= 599 for s in self.error_5xx_statuses):
            raise FaultConfigError("error_5xx_statuses must be a non-empty list of 5xx statuses")

    @classmethod
    def from_dict(cls, base: FaultProfile, raw: object, where: str) -> FaultProfile:
        if not isinstance(raw, Mapping):
            raise FaultConfigError(f"{where}: expected an object")
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise FaultConfigError(f"{where}: unknown key {key!r}")
            if key == "error_5xx_statuses":
                if not isinstance(value, list) or not all(_is_int(s) for s in value):
                    raise FaultConfigError(f"{where}.{key}: expected a list of integers")
                changes[key] = tuple(value)
            elif key == "retry_after_s":
                if not _is_int(value):
                    raise FaultConfigError(f"{where}.{key}: expected an integer")
                changes[key] = value
            else:
                if not _is_number(value):
                    raise FaultConfigError(f"{where}.{key}: expected a number")
                changes[key] = float(value)
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_5xx_statuses"] = list(self.error_5xx_statuses)
        return out


@dataclass(frozen=True, slots=True)
class ScriptStep:
    kind: FaultKind
    status: int | None = None

    @classmethod
    def parse(cls, raw: object, where: str) -> ScriptStep:
        text = str(raw).strip().lower() if _is_int(raw) or isinstance(raw, str) else ""
        if text in ("429", FaultKind.RATE_LIMIT):
            return cls(FaultKind.RATE_LIMIT)
        if text in ("408", FaultKind.TIMEOUT):
            return cls(FaultKind.TIMEOUT)
        if text.isdigit() and 500 <= int(text) <= 599:
            return cls(FaultKind.ERROR_5XX, int(text))
        if text in {k.value for k in FaultKind}:
            return cls(FaultKind(text))
        raise FaultConfigError(f"{where}: unknown script step {raw!r}")

    def to_json(self) -> str:
        return str(self.status) if self.status is not None else self.kind.value


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """A parsed fault document: the default profile, per-model profiles, scripts, seed."""

    default: FaultProfile = field(default_factory=FaultProfile)
    per_model: Mapping[str, FaultProfile] = field(default_factory=_empty)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    script: Mapping[str, tuple[ScriptStep, ...]] = field(default_factory=_empty)
    fail_always: frozenset[str] = frozenset()
    seed: int | None = None

    def profile(self, model_id: str) -> FaultProfile:
        return self.per_model.get(model_id, self.default)

    def accuracy(self, model_id: str) -> float:
        """How often ``model_id`` labels a classification prompt right (``content.make_reply``)."""
        return self.profile(model_id).accuracy

    def off_format(self, model_id: str) -> float:
        """How often ``model_id`` answers a classification prompt with a sentence, not a label."""
        return self.profile(model_id).off_format

    @classmethod
    def from_dict(cls, raw: object) -> FaultConfig:
        if not isinstance(raw, Mapping):
            raise FaultConfigError("the fault document must be a JSON object")
        unknown = set(raw) - {"seed", "models", "script", "fail_always"}
        if unknown:
            raise FaultConfigError(f"unknown top-level keys: {sorted(unknown)}")
        seed = raw.get("seed")
        if seed is not None and not _is_int(seed):
            raise FaultConfigError("seed must be an integer")
        models = raw.get("models", {})
        if not isinstance(models, Mapping):
            raise FaultConfigError("models must be an object keyed by model id or '*'")
        default = FaultProfile.from_dict(FaultProfile(), models.get(DEFAULT, {}), "models.*")
        overrides = {m: dict(v) if isinstance(v, Mapping) else v for m, v in models.items() if m != DEFAULT}
        per_model = {m: FaultProfile.from_dict(default, v, f"models.{m}") for m, v in overrides.items()}
        script = raw.get("script", {})
        if not isinstance(script, Mapping) or not all(isinstance(v, list) for v in script.values()):
            raise FaultConfigError("script must map model ids to lists of steps")
        steps = {
            m: tuple(ScriptStep.parse(s, f"script.{m}[{i}]") for i, s in enumerate(v))
            for m, v in script.items()
        }
        fail_always = raw.get("fail_always", [])
        if not isinstance(fail_always, list) or not all(isinstance(m, str) for m in fail_always):
            raise FaultConfigError("fail_always must be a list of model ids")
        return cls(
            default=default,
            per_model=MappingProxyType(per_model),
            overrides=MappingProxyType(overrides),
            script=MappingProxyType(steps),
            fail_always=frozenset(fail_always),
            seed=seed,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaultConfig:
        try:
            raw = orjson.loads(Path(path).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise FaultConfigError(f"{path}: not JSON: {exc}") from exc
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        models: dict[str, Any] = {DEFAULT: self.default.to_dict()}
        models.update({m: dict(v) for m, v in self.overrides.items()})
        return {
            "seed": self.seed,
            "models": models,
            "script": {m: [s.to_json() for s in steps] for m, steps in self.script.items()},
            "fail_always": sorted(self.fail_always),
        }

    def with_defaults(self, **changes: Any) -> FaultConfig:
        """The same document with ``models["*"]`` keys changed (what CLI flags do)."""
        doc = self.to_dict()
        doc["models"][DEFAULT].update(changes)
        return FaultConfig.from_dict(doc)


@dataclass(frozen=True, slots=True)
class Fault:
    """What one attempt does: wait ``delay_s``, then answer as ``kind`` says."""

    kind: FaultKind
    delay_s: float
    status: int | None = None
    retry_after_s: int = 1


class FaultInjector:
    """Decides each attempt's fault; owns the random generator and the script positions."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._scripts = {m: deque(steps) for m, steps in config.script.items()}

    def rewind(self) -> None:
        self.configure(self._config)

    def decide(self, model_id: str) -> Fault:
        profile = self._config.profile(model_id)
        if model_id in self._config.fail_always:
            return self._fault(profile, FaultKind.ERROR_5XX, 502)
        queue = self._scripts.get(model_id)
        if queue:
            step = queue.popleft()
            status = step.status
            if step.kind is FaultKind.ERROR_5XX and status is None:
                status = profile.error_5xx_statuses[0]
            return self._fault(profile, step.kind, status)
        draw = self._rng.random()
        for kind in _PROBABILISTIC:
            p: float = getattr(profile, kind.value)
            if draw < p:
                return self._fault(profile, kind, None)
            draw -= p
        return self._fault(profile, FaultKind.OK, None)

    def _fault(self, profile: FaultProfile, kind: FaultKind, status: int | None) -> Fault:
        if kind is FaultKind.TIMEOUT:
            return Fault(kind, profile.timeout_s, 408)
        if kind is FaultKind.ERROR_5XX and status is None:
            status = self._rng.choice(profile.error_5xx_statuses)
        if kind is FaultKind.RATE_LIMIT:
            status = 429
        delay_ms = profile.latency_ms
        if profile.latency_jitter_ms:
            delay_ms += self._rng.uniform(0, profile.latency_jitter_ms)
        return Fault(kind, delay_ms / 1000.0, status, profile.retry_after_s)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
