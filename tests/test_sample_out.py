"""ganforge sample --out names what each suffix is for."""


def test_sample_to_a_wav_names_the_audio_commands(capsys):
    from ganforge.cli import main

    assert main(["sample", "no-such-run", "--out", "s.wav"]) == 2
    err = capsys.readouterr().err
    assert "use a .png/.jpg name for a grid" in err and "ganforge vocode or ganforge convert" in err
