"""After a second Ctrl-C in the last save, metrics.jsonl's last end record names what the run keeps."""
import json

import ganforge
from ganforge.commands.train import _say_what_survived


def test_end_record_of_an_unsaved_checkpoint_is_corrected(tmp_path, capsys):
    _, cfg = ganforge.load_config("toy-ring8", ["train.steps=2", "train.batch_size=16", "eval.every=0"])
    run = tmp_path / "run"
    ganforge.train(cfg, run, progress=False)
    metrics = run / "metrics.jsonl"
    # what the trainer writes before the save a second Ctrl-C cut short
    with open(metrics, "a") as f:
        f.write(json.dumps({"event": "end", "step": 71, "how": "interrupted", "signal": "SIGINT",
                            "steps": 5000, "checkpoint": "step_0000071"}) + "\n")
    _say_what_survived(run)
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert (last["event"], last["step"], last["checkpoint"], last["stopped_at"]) == ("end", 2, "step_0000002", 71)
    assert "keeps" in capsys.readouterr().err
    _say_what_survived(run)  # already right: nothing more is written
    assert json.loads(metrics.read_text().splitlines()[-1]) == last
    assert len(metrics.read_text().splitlines()) == len(set(metrics.read_text().splitlines()))
