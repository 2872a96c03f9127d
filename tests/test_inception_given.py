"""A wrong Inception weights file the user named (--inception-weights) is theirs: the error asks for
the published file, not to delete it; a wrong file in ganforge's cache is ours to delete."""
from __future__ import annotations

import pytest

from ganforge.metrics import features as F
from ganforge.metrics.errors import EvalError
from ganforge.metrics.features import get_extractor


def test_a_wrong_weights_file_the_user_named_is_not_theirs_to_delete(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity")
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "bad.pth"
    mine.write_bytes(b"\x00not the weights" * 100)
    with pytest.raises(EvalError) as err:
        get_extractor("inception", inception_weights=mine)
    assert "delete it" not in str(err.value) and f"pass the published file ({F.INCEPTION_FILE}" in str(err.value)
    cached = tmp_path / "cache" / "weights" / F.INCEPTION_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x00not the weights" * 100)
    monkeypatch.setattr(F, "inception_search_paths", lambda: [cached])
    with pytest.raises(EvalError, match="delete it and download"):
        get_extractor("inception")
