"""Review findings on ``ganforge serve``, each reproduced: a JSON body that is not UTF-8, a text
field where an upload goes, a form field given twice and an empty upload each get an error naming
the problem; a run still training is served with a note; a super-resolution model reports its
scale, not data.resolution; a folder given twice and an empty --host are refused; record_sample
takes a run's path; /api/translate without a direction uses the model's own."""
from __future__ import annotations

import io
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import cli
from ganforge.errors import ConfigError
from ganforge.rundir import RunLock

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from ganforge.commands import serve as serve_cmd  # noqa: E402
from ganforge.serve import graph  # noqa: E402
from ganforge.serve.server import create_app  # noqa: E402
from test_export import train_family  # noqa: E402

FAMILIES = ("unconditional", "pix2pix", "superres")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("review5-runs")
    return {name: train_family(name, root) for name in FAMILIES}


@pytest.fixture(scope="module")
def runs(run_dirs):
    return {name: ganforge.load(path) for name, path in run_dirs.items()}


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs)) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="png")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("endpoint", ["/api/sample", "/api/interpolate"])
def test_a_json_body_that_is_not_utf8_is_a_422_naming_it(client, endpoint):
    """Had been 400 'There was an error parsing the body'."""
    r = client.post(endpoint, content=b'\xff\xfe{"n":2}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith("the body is not UTF-8 JSON") and '"model": "unconditional"' in error
    assert client.post(endpoint, json={}).status_code == 200  # and the server goes on


def test_a_text_field_named_file_says_how_to_send_the_upload(client):
    """Had been 422 "file: Value error, Expected UploadFile, received: <class 'str'>"."""
    r = client.post("/api/upscale", data={"file": "hello", "model": "superres"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert "file: a text field, not an upload" in error and "curl -F model=NAME -F file=@INPUT" in error
    assert "Expected UploadFile" not in error


@pytest.mark.parametrize("endpoint,model", [("/api/upscale", "superres"), ("/api/translate", "pix2pix")])
def test_a_form_field_given_twice_is_refused_naming_it(client, endpoint, model):
    """The last of the two had been used without a word."""
    image = png(np.zeros((8, 8, 3), np.uint8))
    r = client.post(endpoint, data={"model": model},
                    files=[("file", ("a.png", image, "image/png")), ("file", ("b.png", image, "image/png"))])
    assert r.status_code == 422 and r.json()["error"] == "form field 'file' is given 2 times; send it once"
    r = client.post(endpoint, data={"model": [model, model]}, files={"file": ("a.png", image, "image/png")})
    assert r.status_code == 422 and r.json()["error"] == "form field 'model' is given 2 times; send it once"
    r = client.post(endpoint, data={"model": model}, files={"file": ("a.png", image, "image/png")})
    assert r.status_code == 200


def test_an_empty_text_field_is_refused_not_taken_as_left_out(client):
    """FastAPI takes `direction=` as a field left out: an unset shell variable in `-F direction=$DIR`
    had translated (and converted voices) the default way without a word."""
    image = png(np.zeros((8, 8, 3), np.uint8))
    for field in ("direction", "model"):
        data = {"model": "pix2pix", field: ""} if field == "direction" else {"model": " "}
        r = client.post("/api/translate", data=data, files={"file": ("a.png", image, "image/png")})
        assert r.status_code == 422, field
        assert r.json()["error"] == f"form field '{field}' is empty; give it a value or leave it out"
    r = client.post("/api/translate", data={"model": "pix2pix"}, files={"file": ("a.png", image, "image/png")})
    assert r.status_code == 200  # and it keeps serving


@pytest.mark.parametrize("endpoint,model", [("/api/upscale", "superres"), ("/api/translate", "pix2pix")])
def test_an_empty_upload_says_it_is_empty(client, endpoint, model):
    """Had been 'not a readable image (UnidentifiedImageError)'."""
    r = client.post(endpoint, data={"model": model}, files={"file": ("a.png", b"", "image/png")})
    assert r.status_code == 400
    assert r.json()["error"].startswith("the upload is empty (0 bytes)")


def test_a_super_resolution_model_reports_its_scale_not_the_training_resolution(client, runs):
    """data.resolution (96 for a run trained with sr.crop=32) is not what an SR model works at,
    and the page had shown it as '96px'."""
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert runs["superres"].config.data.resolution is not None
    assert models["superres"]["resolution"] is None and models["superres"]["scale"] == 2
    assert models["unconditional"]["resolution"] == 8  # the others keep theirs
    js = client.get("/static/app.js").text
    assert "upscaled x${m.scale}" in js


def serve_cli(monkeypatch, *argv) -> int:
    """``ganforge serve ...`` in this process, with the server's loop replaced by a return."""
    monkeypatch.setattr(serve_cmd, "run_server", lambda app, sockets, log_level: app.state.close() or 0)
    return cli.main(["serve", *map(str, argv), "--port", str(free_port())])


def test_a_run_still_training_is_served_with_a_note(run_dirs, runs, monkeypatch, capsys):
    """It had been served with no word that its later checkpoints would not be."""
    path = run_dirs["unconditional"]
    with RunLock(path):  # as a live `ganforge train` holds it
        assert serve_cli(monkeypatch, path) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "still training" in line]
    assert notes == [f"ganforge: note: run unconditional ({path}) is still training; serving its checkpoint "
                     f"of step {runs['unconditional'].step}, and serve does not pick up later checkpoints "
                     f"(restart it to serve a newer one)"]
    assert serve_cli(monkeypatch, path) == 0  # not held: no note
    assert "still training" not in capsys.readouterr().out


def test_the_same_folder_given_twice_is_refused(run_dirs, monkeypatch, capsys):
    """It had been loaded once per mention, as unconditional, unconditional-2, ..."""
    path = run_dirs["unconditional"]
    monkeypatch.chdir(path.parent)
    assert serve_cli(monkeypatch, "unconditional", path, "./unconditional/") == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ganforge: error: unconditional and {path} is given twice (the same folder, {path}); "
                   f"give each model once")
    with pytest.raises(ConfigError, match="^unconditional is given twice"):
        serve_cmd.check_distinct(["unconditional", "unconditional"])
    serve_cmd.check_distinct(["unconditional", str(run_dirs["superres"])])  # distinct folders pass


@pytest.mark.parametrize("host", ["", " "])
def test_an_empty_host_says_it_is_empty(run_dirs, monkeypatch, capsys, host):
    """Had said '--host  is reachable from other machines'."""
    assert serve_cli(monkeypatch, run_dirs["unconditional"], "--host", host) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganforge: error: --host is empty") and "reachable" not in err


@pytest.mark.parametrize("as_path", [str, Path])
def test_record_sample_takes_a_runs_path(run_dirs, runs, as_path):
    """README's ganforge.serve.graph.record_sample(run, n, seed=S).arguments, given the run's path,
    had crashed: 'str' object has no attribute 'objective'."""
    got = graph.record_sample(as_path(run_dirs["unconditional"]), 3, seed=4)
    want = graph.record_sample(runs["unconditional"], 3, seed=4)
    assert got.name == want.name and set(got.arguments) == set(want.arguments)
    assert all(torch.equal(got.tensors[k], want.tensors[k]) for k in want.tensors)
    assert "(str or Path)" in (graph.record_sample.__doc__ or "")


def test_translate_without_a_direction_uses_the_models_own(run_dirs):
    """A pix2pix run trained BtoA translates BtoA only; a request without a direction had been
    sent AtoB (the form's default) and refused."""
    run = ganforge.load(run_dirs["pix2pix"])
    translate = run.objective.translate

    def one_way(x, *, direction=None, **kw):  # a run trained translate.direction=BtoA
        if direction not in (None, "BtoA"):
            raise ConfigError("this run translates BtoA only")
        return translate(x, direction="AtoB", **kw)

    run.objective.translate = one_way
    image = png(np.full((8, 8, 3), 100, np.uint8))
    with TestClient(create_app({"p": run})) as c:
        assert [d["direction"] for d in c.get("/api/models").json()["models"][0]["directions"]] == ["BtoA"]
        r = c.post("/api/translate", files={"file": ("a.png", image, "image/png")})
        assert r.status_code == 200, r.text
        assert any("BtoA" in text for text in Image.open(io.BytesIO(r.content)).text.values())  # its record
        r = c.post("/api/translate", data={"direction": "AtoB"}, files={"file": ("a.png", image, "image/png")})
        assert r.status_code == 422 and r.json()["error"] == "model 'p' translates BtoA only, not AtoB"


def test_a_malformed_multipart_body_is_answered_and_not_logged(client, caplog):
    """python-multipart logged a warning per malformed body ("Expected boundary character ..."):
    any client could write to the server's log. The client gets its 4xx; the log stays quiet."""
    import logging

    with caplog.at_level(logging.WARNING):
        r = client.post("/api/upscale", content=b"--xx\r\ngarbage",
                        headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert 400 <= r.status_code < 500 and "error" in r.json(), r.text
    assert not [rec for rec in caplog.records if rec.name.startswith("python_multipart")], caplog.text
