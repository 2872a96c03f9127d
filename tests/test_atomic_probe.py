"""A stop signal that lands inside the writability probe, after its file was made, leaves no
hidden temporary: a fresh-clone CI run of the SIGTERM-mid-folder test had found
'.001.png.tmpPID.png' beside the outputs (the probe made it, the signal came before its unlink)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ganforge import atomic
from ganforge.signals import Terminated


def test_a_signal_inside_the_probe_leaves_no_temporary(tmp_path, monkeypatch):
    touch = Path.touch

    def made_then_stopped(self, *args, **kwargs):
        touch(self, *args, **kwargs)
        raise Terminated  # the handler runs at the next bytecode boundary inside touch

    monkeypatch.setattr(Path, "touch", made_then_stopped)
    with pytest.raises(Terminated):
        with atomic.atomic_path(tmp_path / "001.png") as tmp:
            tmp.write_bytes(b"never")
    assert list(tmp_path.iterdir()) == []
