"""The eval cache is named as the place features are kept only where they can be: with
GANFORGE_CACHE a file (or a read-only folder) eval had said "(cached for next time in X)", then
warned that it cannot cache in X."""
import warnings

from ganforge.metrics.features import get_extractor
from ganforge.metrics.reference import reference_features


def test_an_unwritable_cache_is_not_announced(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("GANFORGE_CACHE", str(afile))
    said = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference_features("fashion-mnist", get_extractor("fashion-mnist-cnn"), n=20, log=said.append)
    assert said and "cached for next time" not in said[0], said
    assert any("cannot cache features" in str(w.message) for w in caught)  # the one warning stays


def test_a_writable_cache_is_announced(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    said = []
    reference_features("fashion-mnist", get_extractor("fashion-mnist-cnn"), n=20, log=said.append)
    assert said and f"cached for next time in {tmp_path / 'cache'}" in said[0], said
