"""An integer tensor given where floats are taken gets the hint of what it is: run.vocode of an
int mel had been told how to scale uint8 images and int16 audio, neither of which a log-mel is."""
import pytest
import torch

from ganforge import inference
from ganforge.errors import ConfigError


@pytest.mark.parametrize("kind, said, not_said", [
    ("mel", "compute them with run.analyze(wave)", "127.5"),
    ("audio", "int16 audio: x.float() / 32768", "127.5"),
    ("images", "uint8 images: x.float() / 127.5 - 1", "32768"),
])
def test_the_hint_is_the_inputs_own(kind, said, not_said):
    with pytest.raises(ConfigError) as info:
        inference._float_tensor(torch.zeros(2, 3, dtype=torch.int64), "m", "x", kind=kind)
    assert said in str(info.value) and not_said not in str(info.value)
