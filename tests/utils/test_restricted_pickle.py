"""The restricted unpickler reads plain data and refuses anything that could run code."""

import os
import pickle

import numpy as np
import pytest

from fastreid.utils.restricted_pickle import UnsafePickleError, restricted_load, restricted_loads


class _Payload:
    """Unpickling this calls os.system: what a crafted data file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_and_numpy_arrays_round_trip(protocol):
    data = (
        [b"\xff\xd8jpeg bytes", b"more"],  # a face .bin: encoded images + is-same flags
        [True, False],
        {"name": "lfw", "count": 2, "scale": 0.5, "none": None},
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([True, False]),
    )
    loaded = restricted_loads(pickle.dumps(data, protocol=protocol))
    assert loaded[:3] == data[:3]
    np.testing.assert_array_equal(loaded[3], data[3])
    assert loaded[3].dtype == np.float32 and loaded[4].dtype == np.bool_


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps(([b"img"], [True], _Payload(marker))))
    with pytest.raises(UnsafePickleError, match=r"lfw\.bin.*system.*could run code"):
        restricted_load(path)
    assert not marker.exists()
    # The same file through plain pickle would have run the command (the probe is real).
    with open(path, "rb") as handle:
        pickle.load(handle)
    assert marker.exists()


def test_builtins_like_eval_are_refused():
    crafted = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        restricted_loads(crafted)
