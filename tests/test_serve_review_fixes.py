"""Review findings on ``ganforge serve`` and ``ganforge export``, each reproduced: a Ctrl-C stops a
server whose client holds a half-sent request; a second Ctrl-C says one line and exits 130; a
second server on a port fails before it says it serves; bodies that are not JSON objects get
errors naming the problem; echoed names are cut short; a token is checked before the body; a
413 of the body limit is counted under its route; export --force replaces a damaged model
folder and nothing else."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import ganforge
from conftest import ROOT

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from ganforge.commands.serve import listen  # noqa: E402
from ganforge.errors import ConfigError  # noqa: E402
from ganforge.serve import export  # noqa: E402
from ganforge.serve.server import Settings, create_app  # noqa: E402
from test_export import train_family  # noqa: E402
from test_serve import answer, raw_request  # noqa: E402

# `ganforge ...` in a child process, with (argv[1]) the server's Ctrl-C grace in seconds, (argv[2])
# seconds added to each model load and (argv[3]) to each forward pass: a slow model, made here
CHILD = """
import sys, time
from ganforge import api, cli
from ganforge.commands import serve
from ganforge.serve.batching import ModelWorker
serve.GRACE_S = float(sys.argv[1])
slow_load, slow_pass = float(sys.argv[2]), float(sys.argv[3])
real_load, real_forward = api.load, ModelWorker._forward
def load(*args, **kwargs):
    time.sleep(slow_load)
    return real_load(*args, **kwargs)
def forward(self, jobs):
    time.sleep(slow_pass)
    return real_forward(self, jobs)
api.load, ModelWorker._forward = load, forward
sys.exit(cli.main(sys.argv[4:]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-runs")
    return {name: ganforge.load(train_family(name, root)) for name in ("unconditional", "conditional")}


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(run_dir, port: int, *, grace: float = 5, slow_load: float = 0, slow_pass: float = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(grace), str(slow_load), str(slow_pass),
                             "serve", str(run_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_healthy(port: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz in time")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running {timeout} s after the signal; stderr: {err[-2000:]}") from None
    return proc.returncode, out, err


# 1 ------------------------------------------------------------------------------------------------

def test_ctrl_c_stops_a_server_whose_client_holds_a_half_sent_request(runs):
    """Headers of a 100-byte body and one byte of it, then Ctrl-C: the server waited for the rest
    forever; now it drops the request after its grace, says so in one line and exits 130. A
    Ctrl-C with nothing in flight stops at once, silently, with 0."""
    port = free_port()
    proc = serve(runs["unconditional"].run_dir, port, grace=1)
    wait_healthy(port, proc)
    with socket.create_connection(("127.0.0.1", port)) as held:
        held.sendall(b"POST /api/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc, timeout=20)
    assert code == 130 and err == "ganforge: interrupted; requests in flight were dropped\n", err
    assert "serving unconditional" in out
    proc = serve(runs["unconditional"].run_dir, port, grace=1)
    wait_healthy(port, proc)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=20)
    assert code == 0 and err == ""


# 2 ------------------------------------------------------------------------------------------------

def test_a_second_ctrl_c_drops_requests_in_flight_with_one_line_and_130(runs):
    """Ctrl-C twice while a 30-second pass runs: uvicorn's and asyncio's tracebacks (the request's
    CancelledError, a KeyboardInterrupt) and exit 0 before; one line, 130, and a 503 for the client."""
    port = free_port()
    proc = serve(runs["unconditional"].run_dir, port, grace=20, slow_pass=30)
    wait_healthy(port, proc)
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(raw_request("/api/interpolate", json.dumps({"steps": 8}).encode(), "application/json"))
        time.sleep(1.0)  # its pass is running
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        code, out, err = finish(proc, timeout=20)
        got = answer(client)
    assert code == 130 and err == "ganforge: interrupted; requests in flight were dropped\n", err
    assert got.startswith(b"HTTP/1.1 503") and b"shutting down" in got, got[:300]


# 4 ------------------------------------------------------------------------------------------------

def test_of_two_servers_started_at_once_on_a_port_the_second_fails_at_once_in_one_line(runs):
    """Each takes 3 s to load its model: both passed the port check before either bound the port,
    and the loser said it served, then failed in uvicorn's bind with exit 3. Now the port is held
    from the start: the loser's one line, exit 2, before any load."""
    port = free_port()
    procs = [serve(runs["unconditional"].run_dir, port, slow_load=3) for _ in range(2)]
    try:
        end = time.monotonic() + 60
        while all(p.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(0.1)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        out, err = loser.communicate()
        assert loser.returncode == 2, (out, err)
        assert err == f"ganforge: error: cannot listen on 127.0.0.1:{port} (Address already in use); choose " \
                      f"another --port or --host\n"
        assert "serving" not in out
        wait_healthy(port, winner)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                finish(p, timeout=20)


def test_listening_sockets_refuse_a_second_listener_and_take_localhost_and_ipv6():
    port = free_port()
    held = listen("127.0.0.1", port)
    try:
        assert held and all(s.getsockname()[1] == port for s in held)
        with pytest.raises(ConfigError, match=rf"^cannot listen on 127\.0\.0\.1:{port} \(Address already in use\)"):
            listen("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # listening: a client queues
            pass
    finally:
        for s in held:
            s.close()
    for host in ("localhost", "::1"):
        try:
            socks = listen(host, free_port())
        except ConfigError as exc:  # a machine without IPv6
            assert host == "::1" and "cannot listen on [::1]" in str(exc)
            continue
        assert socks
        for s in socks:
            s.close()


# 5 ------------------------------------------------------------------------------------------------

NOT_OBJECTS = [
    ({"content": b""}, "the request body is empty; send a JSON object, e.g. {\"model\": \"unconditional\", \"n\": 4}"),
    ({"json": [1, 2]}, "the request body must be a JSON object, not an array, e.g. {\"model\":"),
    ({"json": "n=4"}, "the request body must be a JSON object, not a string"),
    ({"json": 4}, "the request body must be a JSON object, not a number"),
    ({"content": b"null", "headers": {"Content-Type": "application/json"}}, "must be a JSON object, not null"),
    ({"content": b'{"n": 4}', "headers": {"Content-Type": "text/plain"}},
     "the request body was not read as JSON; send the header Content-Type: application/json"),
    ({"content": b'{"n": 4}'}, "send the header Content-Type: application/json"),
    ({"content": b'{"n": ', "headers": {"Content-Type": "application/json"}},
     "the request body is not valid JSON (Expecting value at character 6); send a JSON object"),
]


@pytest.mark.parametrize("kwargs,message", NOT_OBJECTS, ids=[m[:40] for _, m in NOT_OBJECTS])
def test_a_body_that_is_not_a_json_object_gets_an_error_naming_the_problem(kwargs, message, client):
    r = client.post("/api/sample", **kwargs)
    assert r.status_code == 422 and message in r.json()["error"], r.text
    assert client.post("/api/sample", json={"n": 1}).status_code == 200


def test_an_interpolation_body_error_shows_an_interpolation_body_and_field_errors_name_the_field(client):
    r = client.post("/api/interpolate", json=[])
    assert r.status_code == 422 and r.json()["error"].endswith('e.g. {"model": "unconditional", "steps": 8}')
    r = client.post("/api/sample", json={"n": "5"})
    assert r.json()["error"] == "n: Input should be a valid integer"


# 6 ------------------------------------------------------------------------------------------------

def test_a_name_the_request_gave_is_echoed_cut_short(client):
    r = client.post("/api/sample", json={"model": "m" * 5_000_000})
    assert r.status_code == 404 and len(r.content) < 500
    assert r.json()["error"].startswith(f"unknown model '{'m' * 60}...'; this server has: unconditional")
    r = client.post("/api/sample", json={"model": "conditional", "n": 2, "class": "z" * 5_000_000})
    assert r.status_code == 422 and len(r.content) < 500
    assert r.json()["error"] == f"unknown class '{'z' * 60}...'; valid classes (index or name): 0=a, 1=b"
    # an index of 5,000 digits: not int()'s error past 4,300 digits (a 500)
    r = client.post("/api/sample", json={"model": "conditional", "n": 2, "class": "9" * 5000})
    assert r.status_code == 422 and "unknown class '999" in r.json()["error"]


# 7 ------------------------------------------------------------------------------------------------

def test_with_a_token_every_api_request_without_it_is_a_401_before_its_body_is_read(runs):
    app = create_app({"u": runs["unconditional"]}, Settings(token="s3cret", max_upload_mb=0.01,
                                                            cors="http://page.test"))
    ok = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for kwargs in ({"content": b'{"n": ', "headers": {"Content-Type": "application/json", **headers}},
                           {"content": b"", "headers": headers},
                           {"content": b"x" * 100_000, "headers": headers}):  # over the body limit too
                r = c.post("/api/sample", **kwargs)
                assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"], r.text
            assert c.post("/api/nothing-here", headers=headers).status_code == 401
        assert c.post("/api/sample", content=b'{"n": ', headers={"Content-Type": "application/json", **ok}
                      ).status_code == 422
        assert c.post("/api/sample", json={"n": 1}, headers={"authorization": "bearer s3cret"}).status_code == 200
        # a page on the allowed origin: its preflight passes, and it can read a 401
        pre = c.options("/api/sample", headers={"Origin": "http://page.test", "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://page.test"
        r = c.post("/api/sample", json={"n": 1}, headers={"Origin": "http://page.test"})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "http://page.test"
        # open, as the README says: they run no model
        for path in ("/", "/healthz", "/metrics", "/openapi.json"):
            assert c.get(path).status_code == 200
        assert 'route="/api/sample",status="401"' in c.get("/metrics").text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`/`, `/healthz`, `/metrics`, `/docs` and `/openapi.json` stay open" in readme


# 8 ------------------------------------------------------------------------------------------------

def test_a_413_of_the_body_limit_is_counted_under_its_route(runs):
    with TestClient(create_app({"u": runs["unconditional"]}, Settings(max_upload_mb=0.01))) as c:
        assert c.post("/api/sample", content=b"x" * 100_000).status_code == 413
        assert c.post("/api/nothing-here", json={}).status_code == 404
        text = c.get("/metrics").text
    assert 'ganforge_requests_total{route="/api/sample",status="413"} 1.0' in text
    assert 'ganforge_requests_total{route="other",status="404"} 1.0' in text


# 3 ------------------------------------------------------------------------------------------------

def test_export_force_replaces_a_damaged_model_folder_and_nothing_else(runs, tmp_path):
    """A model folder whose model.safetensors, config.json or both were deleted by hand is
    replaced (it was "something else"); another tool's folder with the same file names, a folder
    with a file of the user's, a lone weights file and a run directory are not, and stay as they were."""
    run = runs["unconditional"]
    model = tmp_path / "model"
    export.export_folder(run, model)
    for lost in (["model.safetensors"], ["config.json"], ["config.json", "model.safetensors"]):
        for name in lost:
            (model / name).unlink()
        export.export_folder(run, model, force=True)
        assert ganforge.load(model).step == run.step
    hf = {"config.json": '{"model_type": "gpt2"}', "model.safetensors": "x", "README.md": "# hf"}
    for name, files in (("hf", hf),
                        ("mine", {"config.json": (model / "config.json").read_text(), "notes.txt": "keep"}),
                        ("weights", {"model.safetensors": "x"}),
                        ("cardless", {"config.json": "not json", "README.md": "# notes"})):
        folder = tmp_path / name
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_text(text)
        with pytest.raises(ConfigError, match="^--force replaces only a model folder; ") as info:
            export.export_folder(run, folder, force=True)
        assert "\n" not in str(info.value)
        assert {p.name: p.read_text() for p in folder.iterdir()} == files
    with pytest.raises(ConfigError, match=r"\(it holds \S+, which export does not write\)"):
        export.export_folder(run, run.run_dir, force=True)
    assert (Path(run.run_dir) / "checkpoints").is_dir()


# `ganforge serve` whose every forward pass first spends about 8 s in torch's own kernels
CHILD_BUSY_TORCH = """
import sys, time, torch
from ganforge import cli
from ganforge.commands import serve
from ganforge.serve.batching import ModelWorker
serve.GRACE_S = 1.0
real_forward = ModelWorker._forward
def forward(self, jobs):
    a, end = torch.randn(1500, 1500), time.monotonic() + 8
    while time.monotonic() < end:
        a = torch.tanh(a @ a)
    return real_forward(self, jobs)
ModelWorker._forward = forward
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_that_drops_a_pass_inside_torch_exits_with_its_code_not_an_abort(runs, sig, code):
    """SIGTERM (or Ctrl-C) while a forward pass runs in torch: after the grace the request is
    dropped, and the process had then aborted on its way out ("terminate called without an
    active exception", SIGABRT, exit 134): a supervisor logged a crash at every such deploy."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD_BUSY_TORCH, "serve", str(runs["unconditional"].run_dir),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_healthy(port, proc)
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(raw_request("/api/sample", json.dumps({"n": 1}).encode(), "application/json"))
        time.sleep(1.0)  # its pass is in torch
        proc.send_signal(sig)
        got_code, out, err = finish(proc, timeout=30)
        got = answer(client)
    assert got_code == code, err
    assert "terminate called" not in err and err.count("\n") == 1, err
    assert got.startswith(b"HTTP/1.1 503"), got[:300]
