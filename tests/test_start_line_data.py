"""The start line says what every family trains on: image pairs, unpaired domains, HR images and
audio clips too (pix2pix and SR start lines had said no count, which README promises for images)."""
import numpy as np
import torch

from ganforge.config import from_dict
from ganforge.data.audio import AudioDataset
from ganforge.data.pairs import TranslationData
from ganforge.data.superres import HRImages
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.cyclegan_vc import VoicePair
from ganforge.objectives.base import counted


def _pairs(n_a, n_b, paired):
    def images(n):
        return torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    return TranslationData(a=images(n_a), b=images(n_b), test_a=images(1), test_b=images(1),
                           paired=paired, name="x", source="x", crop=8, flip=False)


def _clips(n, seconds, rate=8000):
    return AudioDataset(name="v", root=None, rate=rate, waves=[np.zeros(int(seconds * rate), np.float32)] * n,
                        files=[f"{i}.wav" for i in range(n)])


def test_each_family_says_what_it_trains_on():
    assert counted(1, "images") == "1 image" and counted(40, "images") == "40 images"
    assert OBJECTIVES["pix2pix"].describe_data(_pairs(400, 400, True)) == "400 image pairs"
    assert OBJECTIVES["cyclegan"].describe_data(_pairs(400, 380, False)) == "400 + 380 images (A + B)"
    hr = HRImages(images=[torch.zeros(3, 16, 16, dtype=torch.uint8)] * 4, name="photos")
    assert OBJECTIVES["superres"].describe_data(hr) == "4 HR images"
    assert OBJECTIVES["vocoder"].describe_data(_clips(600, 2.0)) == "600 clips, 20.0 min"
    pair = VoicePair.__new__(VoicePair)  # the two voices' datasets; their mels are not needed here
    pair.a, pair.b = _clips(300, 2.0), _clips(290, 3.0)
    assert OBJECTIVES["cyclegan-vc"].describe_data(pair) == "300 + 290 clips, 24.5 min"


def test_the_start_line_names_the_image_pairs(tmp_path, capsys):
    from ganforge import cli

    cfg = from_dict(OBJECTIVES["pix2pix"].example_config(tmp_path))
    config = tmp_path / "p.yaml"
    config.write_text(cfg.to_yaml())
    assert cli.main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("ganforge: training ") and first.endswith(" image pairs)"), first
