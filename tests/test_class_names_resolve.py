"""A typed class is first a class's exact name (Unicode-normalized), then a name differing only by
case when one class has it, then an index. Class folders named 0..11 sort as text (0, 1, 10, ...),
so `--class 2` had drawn index 2, folder "10"; of folders "Cat" and "cat", `--class Cat` had drawn
"cat"; a name typed decomposed (e + combining accent, as macOS makes it) had been "unknown"."""
import unicodedata

import pytest

from ganforge.labels import ClassError, resolve_class

NAMES = ["10", "2", "Cat", "cat", "chat \u00e9"]  # as a folder's subfolders sort


def test_an_exact_name_comes_before_an_index_and_before_another_case():
    assert resolve_class("2", NAMES) == 1  # the folder named 2, not index 2
    assert resolve_class("10", NAMES) == 0  # a name, although past the last index
    assert resolve_class("Cat", NAMES) == 2 and resolve_class("cat", NAMES) == 3
    assert resolve_class(2, NAMES) == 2  # an int is an index (Python's labels=2)
    assert resolve_class("4", NAMES) == 4  # no class named 4: the index


def test_names_compare_unicode_normalized_and_case_only_when_unique():
    decomposed = unicodedata.normalize("NFD", "chat \u00e9")
    assert decomposed != NAMES[4] and resolve_class(decomposed, NAMES) == 4
    assert resolve_class("CHAT \u00c9", NAMES) == 4  # one class by that name regardless of case
    with pytest.raises(ClassError, match=r"class 'CAT' matches 'Cat' and 'cat', which differ only by case"):
        resolve_class("CAT", NAMES)
    assert resolve_class("sneaker", ["T-shirt/top", "Sneaker"]) == 1
    with pytest.raises(ClassError, match=r"unknown class 'dog'"):
        resolve_class("dog", NAMES)
    with pytest.raises(ClassError, match=r"class index 7 is out of range"):
        resolve_class("7", NAMES)
