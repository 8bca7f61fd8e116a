"""Every FastTune test signs and verifies search folders with a key of its own, in its own
temporary folder, never the user's ``~/.config/fastreid/fasttune.key``."""

import pytest


@pytest.fixture(autouse=True)
def own_key_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
