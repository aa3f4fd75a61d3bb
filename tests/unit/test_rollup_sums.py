"""The rollup Aggregator's sums: parsed a whole hash at a time, yet equal to parsing value by value.

The fast path (one orjson call per hash) must give exactly what ``int()``/``float()`` per value
gives, and anything that is not a plain numeral must take the per-value path, so odd input is
summed or refused exactly as before instead of being shifted onto another field.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from worker.analytics.rollups import Aggregator, Metrics
from worker.rollup_format import field

DIMS = [("default", "openai/gpt-4o-mini", "-", "chat", f"t{i}") for i in range(3)]


def flat(pairs: list[tuple[str, Any]], *, as_str: bool = False) -> list[Any]:
    out: list[Any] = []
    for name, value in pairs:
        out += [name, value] if as_str else [name.encode(), str(value).encode()]
    return out


def hour(rng: random.Random) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for dims in DIMS:
        n = rng.randrange(1, 2**40)
        pairs += [(field(dims, "n"), n), (field(dims, "cost"), rng.randrange(2**62)),
                  (field(dims, "qs"), repr(rng.random() * n)), (field(dims, "qq"), repr(rng.random()))]
    rng.shuffle(pairs)  # every hash lists its fields in its own order
    return pairs


def by_value(hours: list[list[tuple[str, Any]]]) -> dict[str, int | float]:
    """What each field sums to when every value is parsed on its own, in hour order."""
    out: dict[str, int | float] = {}
    for pairs in hours:
        for name, value in pairs:
            metric = name.rsplit("|", 1)[1]
            parsed = float(value) if metric in ("qs", "qq") else int(value)
            out[name] = out.get(name, 0) + parsed
    return out


def expected(hours: list[list[tuple[str, Any]]]) -> dict[tuple[str, ...], Metrics]:
    sums = by_value(hours)
    out: dict[tuple[str, ...], Metrics] = {}
    for dims in DIMS:
        counts = {m: sums[field(dims, m)] for m in ("n", "cost", "qs", "qq") if field(dims, m) in sums}
        out[(dims[4],)] = Metrics.from_counts(counts)
    return out


@pytest.mark.parametrize("as_str", [False, True], ids=["bytes", "str"])
def test_sums_equal_parsing_each_value(as_str: bool) -> None:
    rng = random.Random(11)
    hours = [hour(rng) for _ in range(50)]
    agg = Aggregator(["tenant"])
    for i, pairs in enumerate(hours):
        agg.add_hour(f"20261130{i % 24:02d}", flat(pairs, as_str=as_str))
    assert agg.groups() == expected(hours)  # floats too: the same values added in the same order


@pytest.mark.parametrize("odd", [b"+5", b"05", b" 5", b"5\t", str(2**64 - 1).encode()])
def test_numerals_in_any_form_int_reads_are_summed_as_before(odd: bytes) -> None:
    good = [(field(DIMS[0], "n"), 7), (field(DIMS[1], "n"), 3)]
    agg = Aggregator(["tenant"])
    agg.add_hour("2026113000", flat(good))
    agg.add_hour("2026113001", [field(DIMS[0], "n").encode(), odd, field(DIMS[1], "n").encode(), b"4"])
    groups = agg.groups()
    assert groups[("t0",)].n == 7 + int(odd)
    assert groups[("t1",)].n == 3 + 4


def test_a_comma_inside_a_value_is_refused_not_shifted_onto_the_next_field() -> None:
    agg = Aggregator(["tenant"])
    agg.add_hour("2026113000", [field(DIMS[0], "n").encode(), b"1,2", field(DIMS[1], "n").encode(), b"4"])
    with pytest.raises(ValueError):
        agg.groups()


@pytest.mark.parametrize("odd", [b"1.5", b"1e3", b"true", b"null", b"", str(2**64).encode()])
def test_a_count_that_is_not_a_64_bit_integer_is_refused(odd: bytes) -> None:
    """HINCRBY can only have written a 64-bit integer; anything else is a damaged hash."""
    agg = Aggregator([])
    agg.add_hour("2026113000", [field(DIMS[0], "n").encode(), odd])
    with pytest.raises(ValueError):
        agg.groups()


def test_an_hgetall_mapping_of_numbers_is_summed() -> None:
    agg = Aggregator([])
    agg.add_hour("2026113000", {field(DIMS[0], "n"): 2, field(DIMS[0], "qs"): 0.5})
    agg.add_hour("2026113001", {field(DIMS[0], "n").encode(): b"3", field(DIMS[0], "qs").encode(): b"inf"})
    total = agg.groups()[()]
    assert (total.n, total.qs) == (5, float("inf"))


def test_summed_statuses_are_listed_in_one_order_whatever_the_hash_seed() -> None:
    """A set's order follows the process's string hashing: the report's JSON changed run to run."""
    total = Metrics(statuses={"succeeded": 5, "failed": 1}) + Metrics(statuses={"rejected": 2, "failed": 1})
    assert list(total.statuses.items()) == [("failed", 2), ("rejected", 2), ("succeeded", 5)]
