import pickle

import orjson
from hypothesis import given
from hypothesis import strategies as st

from worker.serialization import INVALID_KEY, deserialize, serialize


def test_round_trip_of_a_real_envelope() -> None:
    env = {"t": None, "f": "complete", "a": [{"messages": []}], "k": {}, "et": 1}
    assert deserialize(serialize(env)) == env


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickle_payload_is_rejected_not_executed(capsys: object) -> None:
    doc = deserialize(pickle.dumps(Boom()))
    assert "not JSON" in doc["a"][0][INVALID_KEY]
    assert "pwned" not in capsys.readouterr().out  # type: ignore[attr-defined]


def test_other_function_names_are_refused() -> None:
    doc = deserialize(orjson.dumps({"t": None, "f": "os.system", "a": [{}], "k": {}, "et": 1}))
    assert "only runs 'complete'" in doc["a"][0][INVALID_KEY]


@given(st.binary(max_size=200))
def test_any_bytes_give_a_runnable_envelope(data: bytes) -> None:
    doc = deserialize(data)
    assert doc["f"] == "complete" and len(doc["a"]) == 1 and isinstance(doc["et"], int)
