"""metrics.json and tensorboard writers: what they write, and nothing before the first write."""

from __future__ import annotations

import json
import os

from fastreid.utils.events import EventStorage, JSONWriter, TensorboardXWriter


def test_writers_open_nothing_until_the_first_write_and_close_cleanly(tmp_path):
    json_path = tmp_path / "run" / "metrics.json"
    writers = [JSONWriter(str(json_path)), TensorboardXWriter(str(tmp_path / "tb"))]
    # Built, never written (a trainer built but not trained): no file, and close() is safe.
    for w in writers:
        w.close()
    assert not json_path.exists() and not (tmp_path / "tb").exists()


def test_json_writer_writes_each_new_value_once_and_appends(tmp_path):
    json_path = str(tmp_path / "metrics.json")
    with EventStorage(start_iter=0) as storage:
        writer = JSONWriter(json_path)
        storage.put_scalar("loss", 2.0, smoothing_hint=False)
        writer.write()
        writer.write()  # nothing new: no second line
        storage.step()
        storage.put_scalar("loss", 1.0, smoothing_hint=False)
        storage.put_scalar("Rank-1", 50.0, smoothing_hint=False)
        writer.write()
        writer.close()
        tb = TensorboardXWriter(str(tmp_path / "tb"))
        tb.write()
        tb.close()
    with open(json_path) as f:
        lines = [json.loads(line) for line in f]
    assert lines == [{"iteration": 0, "loss": 2.0}, {"iteration": 1, "loss": 1.0, "Rank-1": 50.0}]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tb"))
