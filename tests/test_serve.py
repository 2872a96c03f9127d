"""ganforge serve's API with FastAPI's TestClient: every endpoint returns what the run itself
computes (batched or not), every bad request gets a 4xx JSON error naming the problem, and the
server keeps serving afterwards."""
from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import time

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from conftest import run_cli

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.serve.batching import slerp  # noqa: E402
from ganforge.serve.server import Settings, create_app, png_bytes  # noqa: E402
from test_export import train_family  # noqa: E402  (also registers the test-truncation family)

FAMILIES = ["unconditional", "conditional", "pix2pix", "cyclegan", "superres", "test-truncation"]
LIMITS = dict(max_n=8, max_upload_mb=0.02, max_pixels=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-runs")
    return {name: ganforge.load(train_family(name, root)) for name in FAMILIES}


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(runs, Settings(**LIMITS, batch_wait_ms=0))) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="png")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def upload(client, endpoint, data: bytes, **form):
    return client.post(endpoint, data=form, files={"file": ("in.png", data, "image/png")})


def test_models_lists_capabilities_classes_and_resolution(client, runs):
    body = client.get("/api/models").json()
    models = {m["name"]: m for m in body["models"]}
    assert set(models) == set(FAMILIES)
    assert models["conditional"]["classes"] == ["a", "b"] and models["unconditional"]["classes"] is None
    assert models["conditional"]["capabilities"] == ["interpolate", "sample", "sample_labels"]
    assert models["test-truncation"]["capabilities"] == ["sample", "truncation"]
    # the page's slider range (BigGAN's reaches threshold 3); unticked, the page sends no truncation
    assert models["test-truncation"]["truncation"] == {"min": 0.0, "max": 1.0, "step": 0.05, "default": 0.7}
    assert "truncation" not in models["unconditional"]
    assert models["unconditional"]["resolution"] == 8 and models["superres"]["scale"] == 2
    assert [d["direction"] for d in models["pix2pix"]["directions"]] == ["AtoB"]
    assert [d["direction"] for d in models["cyclegan"]["directions"]] == ["AtoB", "BtoA"]
    assert body["limits"] == {"max_n": 8, "max_upload_mb": 0.02, "max_pixels": 900, "max_audio_seconds": 60.0}


@pytest.mark.parametrize("model,extra", [("unconditional", {}), ("conditional", {"class": "b"}),
                                         ("test-truncation", {"truncation": 0.4})])
def test_sample_png_is_the_runs_own_sample_grid(model, extra, client, runs):
    r = client.post("/api/sample", json={"model": model, "n": 5, "seed": 11, **extra})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    ref = runs[model].sample(5, seed=11, labels=extra.get("class"), truncation=extra.get("truncation"))
    assert np.array_equal(decode(r.content), decode(png_bytes(ref, 2)))


def test_sample_npz_holds_uint8_images_and_labels(client, runs):
    r = client.post("/api/sample", json={"model": "conditional", "n": 4, "seed": 2, "class": 1, "format": "npz"})
    assert r.status_code == 200
    data = np.load(io.BytesIO(r.content))
    assert np.array_equal(data["images"], runs["conditional"].sample_uint8(4, seed=2, labels=1))
    assert data["labels"].tolist() == [1, 1, 1, 1]


def test_async_submissions_reach_the_loop_once_per_forward_pass_as_pixels(runs):
    """submit_async: a forward pass's results are set in one call onto the event loop (one
    wake-up, not one per request), pixels=True gives each request its own images' to_pixels,
    a bad request fails alone, and a request that went away before its pass is not run."""
    import asyncio

    from ganforge.serve.batching import ModelWorker, to_pixels

    run = runs["unconditional"]
    worker = ModelWorker("u", run, max_batch=16, wait_ms=300)
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda fn, *a: (calls.append(len(a[0])), real(fn, *a))[1]
        futures = [worker.submit_async("sample", n=2, seed=s, pixels=s % 2 == 0) for s in range(5)]
        bad = worker.submit_async("sample", n=1, seed=0, labels=3)  # unconditional: refused
        gone = worker.submit_async("sample", n=1, seed=9)
        gone.cancel()
        got = await asyncio.gather(*futures)
        with pytest.raises(GanforgeError, match="unconditional"):
            await bad
        await asyncio.sleep(0.05)
        return got

    try:
        got = asyncio.run(main())
    finally:
        worker.close()
    for s, images in enumerate(got):
        ref = run.sample(2, seed=s)
        if s % 2 == 0:
            assert images.dtype == torch.uint8 and torch.equal(images, to_pixels(ref))
        else:
            assert torch.allclose(images, ref, atol=1e-5)
    assert calls == [1, 5]  # the refused request's error, then one forward pass's five results


def test_concurrent_requests_share_a_forward_pass_and_keep_their_own_results(runs):
    app = create_app({"u": runs["unconditional"]}, Settings(max_batch=16, batch_wait_ms=300))
    with TestClient(app) as c:
        worker = app.state.workers["u"]
        futures = [worker.submit("sample", n=2, seed=s) for s in range(6)]
        for s, f in enumerate(futures):
            assert torch.allclose(f.result(timeout=30), runs["unconditional"].sample(2, seed=s), atol=1e-5)
        text = c.get("/metrics").text
    # 12 images in one pass: every batch observation lies in the <= 16 bucket, none in <= 8
    assert 'ganforge_batch_images_bucket{le="8.0",model="u"} 0.0' in text
    assert 'ganforge_batch_images_sum{model="u"} 12.0' in text


def test_unbatched_serving_gives_the_same_images(runs):
    app = create_app({"u": runs["unconditional"]}, Settings(max_batch=1))
    with TestClient(app) as c:
        r = c.post("/api/sample", json={"n": 3, "seed": 9})
    assert np.array_equal(decode(r.content), decode(png_bytes(runs["unconditional"].sample(3, seed=9), 2)))


@pytest.mark.parametrize("model,cls", [("unconditional", None), ("conditional", "b")])
def test_interpolation_ends_are_the_seeds_own_samples_in_the_run_and_the_server(model, cls, client, runs):
    run = runs[model]
    ends = torch.cat([run.sample(1, seed=3, labels=cls), run.sample(1, seed=4, labels=cls)])
    walk = run.interpolate([3, 4], 6, labels=cls)  # a looping walk: frame 0 is seed 3, frame 3 seed 4
    assert walk.shape == (6, *ends.shape[1:])
    assert torch.allclose(walk[0], ends[0], atol=1e-5) and torch.allclose(walk[3], ends[1], atol=1e-5)
    assert (walk[1] - ends[0]).abs().max() > 1e-3 and (walk[1] - ends[1]).abs().max() > 1e-3  # in between
    assert torch.allclose(walk[5], walk[1], atol=1e-5)  # back from 4 to 3: 2/3 of the way is 1/3 from 3
    assert torch.equal(walk, run.interpolate([3, 4], 6, labels=cls))
    r = client.post("/api/interpolate", json={"model": model, "seed_a": 3, "seed_b": 4, "steps": 4,
                                               **({"class": cls} if cls else {})})
    assert r.status_code == 200
    # the served walk (batched through the recorded generator call) is the run's a -> b half
    assert np.array_equal(decode(r.content), decode(png_bytes(walk[:4], 4)))
    # and a plain run refuses a W walk in one line
    with pytest.raises(ganforge.errors.ConfigError, match="use --space z") as info:
        run.interpolate([3, 4], 4, space="w")
    assert "\n" not in str(info.value)


def test_slerp_stays_on_the_circle_between_orthogonal_latents():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = slerp(a, b, torch.tensor([0.0, 1 / 3, 0.5, 1.0]))
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)  # a third of the 90-degree arc
    expected = torch.tensor([[1.0, 0.0], [c, s], [0.5 ** 0.5, 0.5 ** 0.5], [0.0, 1.0]], dtype=torch.float32)
    assert torch.allclose(mid, expected, atol=1e-6)
    assert torch.equal(mid[0], a[0]) and torch.equal(mid[-1], b[0])  # the ends exactly
    z = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(slerp(z[:1], z[:1] * 2, torch.tensor([0.5])), z[:1] * 1.5)  # parallel: linear


@pytest.mark.parametrize("model,direction", [("pix2pix", "AtoB"), ("cyclegan", "BtoA")])
def test_translate_returns_the_runs_translation(model, direction, client, runs):
    image = np.random.default_rng(0).integers(0, 256, (11, 14, 3), dtype=np.uint8)
    r = upload(client, "/api/translate", png(image), model=model, direction=direction)
    assert r.status_code == 200
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    ref = runs[model].translate(x, direction=direction)
    assert np.array_equal(decode(r.content), decode(png_bytes(ref, 1)))


def test_upscale_returns_the_runs_upscaled_image(client, runs):
    image = np.random.default_rng(1).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    r = upload(client, "/api/upscale", png(image), model="superres")
    assert r.status_code == 200
    assert np.array_equal(decode(r.content), runs["superres"].upscale(image))


BAD = [
    ("post", "/api/sample", {"json": {"n": 9}}, 422, "--max-n 8"),
    ("post", "/api/sample", {"json": {"n": 0}}, 422, "n: Input should be greater than or equal to 1"),
    ("post", "/api/sample", {"json": {"model": "conditional", "n": 2, "class": "zebra"}}, 422, "unknown class 'zebra'"),
    ("post", "/api/sample", {"json": {"model": "conditional", "n": 2, "class": 7}}, 422, "0=a, 1=b"),
    ("post", "/api/sample", {"json": {"model": "conditional", "n": 2, "class": True}}, 422, "class"),  # not class 1
    ("post", "/api/sample", {"json": {"model": "test-truncation", "n": 2, "truncation": 1.5}}, 422,
     "truncation 1.5 is outside model 'test-truncation''s range 0 to 1 (GET /api/models)"),
    ("post", "/api/interpolate", {"json": {"model": "conditional", "truncation": 0.5}}, 422,
     "model 'conditional' has no truncation"),
    # strict numbers: true is not n=1, a string is not a number
    ("post", "/api/sample", {"json": {"n": True}}, 422, "n: Input should be a valid integer"),
    ("post", "/api/sample", {"json": {"n": "5"}}, 422, "n: Input should be a valid integer"),
    ("post", "/api/sample", {"json": {"model": "test-truncation", "truncation": "0.5"}}, 422,
     "truncation: Input should be a valid number"),
    ("post", "/api/interpolate", {"json": {"steps": 2.0}}, 422, "steps: Input should be a valid integer"),
    # in the API's terms, without the server's paths or CLI commands (the run's own errors have them)
    ("post", "/api/sample", {"json": {"model": "unconditional", "n": 2, "truncation": 0.5}}, 422,
     "model 'unconditional' has no truncation; leave out 'truncation'"),
    ("post", "/api/sample", {"json": {"model": "unconditional", "n": 2, "class": 1}}, 422,
     "model 'unconditional' is unconditional; leave out 'class'"),
    ("post", "/api/interpolate", {"json": {"model": "unconditional", "class": "a"}}, 422,
     "model 'unconditional' is unconditional; leave out 'class'"),
    ("post", "/api/sample", {"json": {"model": "nope"}}, 404, "unknown model 'nope'"),
    ("post", "/api/sample", {"json": {"model": "pix2pix"}}, 422, "cannot sample"),
    ("post", "/api/sample", {"json": {"format": "gif"}}, 422, "format"),
    ("post", "/api/sample", {"json": {"n": 2, "path": "/etc/passwd"}}, 422, "path: Extra inputs are not permitted"),
    ("post", "/api/interpolate", {"json": {"steps": 50}}, 422, "--max-n 8"),
    ("post", "/api/interpolate", {"json": {"model": "test-truncation"}}, 422, "cannot interpolate"),
    ("post", "/api/translate", {"data": {"model": "pix2pix"}}, 422, "file: Field required"),
    ("post", "/api/translate", {"json": {"model": "pix2pix"}}, 422,  # a JSON body where an upload goes
     "send the upload as multipart/form-data, e.g. curl -F model=NAME -F file=@INPUT"),
    ("post", "/api/translate", {"data": {"model": "pix2pix", "direction": "BtoA"},
                                "files": {"file": ("a.png", png(np.zeros((8, 8, 3), np.uint8)))}}, 422, "AtoB only"),
    ("post", "/api/upscale", {"data": {"model": "superres"}, "files": {"file": ("a.png", b"not an image")}},
     400, "not a readable image (no image format recognized in it)"),  # not "(UnidentifiedImageError)"
    ("post", "/api/upscale", {"data": {"model": "superres"},
                              "files": {"file": ("a.png", png(np.zeros((40, 40, 3), np.uint8)))}},
     413, "--max-pixels 900"),
    ("post", "/api/upscale", {"data": {"model": "superres"}, "files": {"file": ("a.bin", bytes(30_000))}},
     413, "--max-upload-mb 0.02"),
    ("post", "/api/upscale", {"data": {"model": "superres"}, "files": {"file": ("a.bin", bytes(200_000))}},
     413, "--max-upload-mb"),  # refused by the body limit before the form is parsed
    ("post", "/api/upscale", {"data": {"model": "superres"},
                              "files": {"file": ("a.png", png(np.zeros((20, 20, 3), np.uint8)))}},
     413, "gives 40x40 = 1600 pixels, over the server's limit --max-pixels 900"),  # the output, x2
    ("post", "/api/translate", {"data": {"model": "pix2pix", "directon": "BtoA"},  # misspelt: not ignored
                                "files": {"file": ("a.png", png(np.zeros((8, 8, 3), np.uint8)))}}, 422,
     "unknown form field 'directon' (did you mean 'direction'?); this endpoint takes file, model, direction"),
    ("post", "/api/upscale", {"data": {"model": "superres", "tile": "64"},
                              "files": {"file": ("a.png", png(np.zeros((8, 8, 3), np.uint8)))}}, 422,
     "unknown form field 'tile'"),
    ("get", "/static/../api.py", {}, 404, "Not Found"),
]


@pytest.mark.parametrize("method,path,kwargs,status,message", BAD, ids=[b[-1][:30] for b in BAD])
def test_each_bad_request_gets_a_json_error_and_the_server_keeps_serving(method, path, kwargs, status,
                                                                        message, client, runs):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error
    assert not any(str(run.run_dir.parent) in error for run in runs.values())  # no server path
    assert client.get("/healthz").json() == {"status": "ok", "models": len(FAMILIES)}
    assert client.post("/api/sample", json={"n": 1}).status_code == 200


def test_token_is_required_on_every_api_call(runs):
    app = create_app({"u": runs["unconditional"]}, Settings(token="s3cret"))
    with TestClient(app) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.post("/api/sample", json={"n": 1}, headers=headers)
            assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
            assert c.get("/api/models", headers=headers).status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/api/sample", json={"n": 1}, headers=ok).status_code == 200
        assert c.get("/api/models", headers=ok).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


def test_docs_declare_the_token_and_show_a_served_models_body(runs, client):
    """/docs (Swagger UI, from /openapi.json): with a token its Authorize button takes the Bearer
    token (it had no scheme, so calls from /docs got 401); the example bodies name a model this
    server has, not Swagger's placeholder "string"."""
    spec = client.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    body = spec["paths"]["/api/sample"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["unconditional"]["value"] == {"model": "unconditional", "n": 4, "seed": 0}
    walk = spec["paths"]["/api/interpolate"]["post"]["requestBody"]["content"]["application/json"]
    assert walk["examples"]["unconditional"]["value"]["model"] == "unconditional"
    app = create_app({"u": runs["unconditional"]}, Settings(token="s3cret"))
    with TestClient(app) as c:
        spec = c.get("/openapi.json").json()
        r = c.post("/api/sample", json=spec["paths"]["/api/sample"]["post"]["requestBody"]["content"]
                   ["application/json"]["examples"]["u"]["value"], headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"  # the example works as sent
    assert spec["components"]["securitySchemes"]["token"] == {"type": "http", "scheme": "bearer",
                                                              "description": "the server's --token"}
    for path, methods in spec["paths"].items():
        for op in methods.values():
            assert (op.get("security") == [{"token": []}]) == path.startswith("/api/"), path


def test_cors_is_off_unless_an_origin_is_given(runs, client):
    origin = {"Origin": "http://example.test"}
    assert "access-control-allow-origin" not in client.get("/api/models", headers=origin).headers
    app = create_app({"u": runs["unconditional"]}, Settings(cors="http://example.test"))
    with TestClient(app) as c:
        assert c.get("/api/models", headers=origin).headers["access-control-allow-origin"] == "http://example.test"
        assert "access-control-allow-origin" not in c.get("/api/models", headers={"Origin": "http://evil.test"}).headers


def test_metrics_count_requests_by_route_and_status(runs):
    with TestClient(create_app({"u": runs["unconditional"]}, Settings(max_n=4))) as c:
        for _ in range(3):
            c.post("/api/sample", json={"n": 2})
        c.post("/api/sample", json={"n": 5})
        text = c.get("/metrics").text
    assert 'ganforge_requests_total{route="/api/sample",status="200"} 3.0' in text
    assert 'ganforge_requests_total{route="/api/sample",status="422"} 1.0' in text
    assert 'ganforge_request_latency_seconds_count{route="/api/sample"} 4.0' in text
    assert 'ganforge_batch_images_sum{model="u"} 6.0' in text


def test_page_and_docs_are_served_without_external_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for path in ("/", "/static/app.js", "/static/style.css"):
        body = client.get(path).text
        assert "http://" not in body and "https://" not in body and "//cdn" not in body
    # /docs: Swagger UI from the package's own copy, every URL on this server (FastAPI's default
    # loads it from a CDN, so the docs would be blank offline)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
    assert "http://" not in docs.text and "https://" not in docs.text and "//cdn" not in docs.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert len(urls) == 3 and all(u.startswith("/docs-assets/") for u in urls)
    for u in urls:
        asset = client.get(u)
        assert asset.status_code == 200 and len(asset.content) > 500
    js = client.get(next(u for u in urls if u.endswith(".js")))
    assert "javascript" in js.headers["content-type"] and len(js.content) > 500_000  # the whole bundle
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: off
    spec = client.get("/openapi.json").json()
    assert {"/api/models", "/api/sample", "/api/interpolate", "/api/translate", "/api/upscale"} <= set(spec["paths"])


def test_serve_refuses_a_public_host_without_a_token(runs):
    r = run_cli("serve", runs["unconditional"].run_dir, "--host", "0.0.0.0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--token" in r.stderr


def test_serve_refuses_zero_threads(runs):
    r = run_cli("serve", runs["unconditional"].run_dir, "--threads", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--threads must be at least 1" in r.stderr


def test_interpolate_command_walks_a_plain_run_in_z(runs, tmp_path):
    run = runs["conditional"]
    r = run_cli("interpolate", run.run_dir, "--seeds", "3,4", "--frames", "4", "--class", "b",
                "--out", tmp_path / "walk.png")
    assert r.returncode == 0, r.stderr
    assert "z space, slerp" in r.stdout
    frames = run.interpolate([3, 4], 4, labels="b")
    assert np.array_equal(decode((tmp_path / "walk.png").read_bytes()), decode(png_bytes(frames, 4)))
    r = run_cli("interpolate", run.run_dir, "--seeds", "3,4", "--space", "w", "--out", tmp_path / "w.gif")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "use --space z" in r.stderr
    assert not (tmp_path / "w.gif").exists()


@pytest.mark.parametrize("n,channels", [(1, 1), (1, 3), (5, 1), (5, 3)])
def test_png_bytes_are_torchvisions_save_image_pixel_for_pixel(runs, n, channels):
    from torchvision.utils import save_image

    gray = runs["conditional"].sample(n, seed=1)[:, :1] * 1.2  # some values outside [-1, 1]: clamped
    images = gray if channels == 1 else torch.cat([gray, -gray, 0.5 * gray], dim=1)  # distinct channels
    buf = io.BytesIO()
    save_image(images, buf, format="png", nrow=2, normalize=True, value_range=(-1, 1))
    assert np.array_equal(decode(png_bytes(images, 2)), decode(buf.getvalue()))


def test_without_a_model_name_the_first_model_that_can_is_used(client):
    """The first model served (unconditional) cannot translate: it had answered 'cannot translate'."""
    r = upload(client, "/api/translate", png(np.zeros((8, 8, 3), np.uint8)))
    assert r.status_code == 200, r.text


def test_an_unexpected_error_is_a_json_500_and_the_server_keeps_serving(runs, monkeypatch):
    app = create_app({"p": runs["pix2pix"], "u": runs["unconditional"]}, Settings(batch_wait_ms=0))
    with TestClient(app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(runs["pix2pix"], "translate", lambda *a, **k: 1 / 0)
        r = upload(c, "/api/translate", png(np.zeros((8, 8, 3), np.uint8)), model="p")
        assert r.status_code == 500 and r.json()["error"].startswith("internal error (ZeroDivisionError")
        assert c.post("/api/sample", json={"model": "u", "n": 1}).status_code == 200


def test_the_page_asks_for_no_missing_favicon(client):
    assert client.get("/favicon.ico").status_code == 204


def test_a_streamed_body_over_the_limit_is_a_413_and_one_within_it_is_served(client):
    """A chunked body (no Content-Length) over --max-upload-mb had come back as 400 'There was an
    error parsing the body'."""
    def chunks(total):
        for _ in range(total // 1000):
            yield bytes(1000)

    r = client.post("/api/sample", content=chunks(200_000), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]
    body = json.dumps({"n": 1}).encode()
    r = client.post("/api/sample", content=iter([body[:3], body[3:]]), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


@contextlib.contextmanager
def live_server(app):
    """A real uvicorn server for ``app`` on a free loopback port, in a thread; yields the port."""
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not server.started and time.monotonic() < end:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def raw_request(path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: "
            f"{len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def answer(sock) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def upload_request(image: np.ndarray) -> bytes:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png(image) + f"\r\n--{boundary}--\r\n".encode()
    return raw_request("/api/upscale", body, f"multipart/form-data; boundary={boundary}")


def test_an_upscale_whose_client_left_before_it_ran_is_not_run(runs, monkeypatch):
    """A real server: of three slow uploads, two whose clients closed their connections while
    the first ran are skipped by the model's thread, and the server goes on answering; a client
    that leaves in the middle of its upload is counted as 499, not as a bad body (400)."""
    run, calls = runs["superres"], []
    real = run.upscale

    def slow(image, **kw):
        calls.append(1)
        time.sleep(1.5)
        return real(image, **kw)

    monkeypatch.setattr(run, "upscale", slow)
    request = upload_request(np.full((6, 6, 3), 90, np.uint8))
    with live_server(create_app({"sr": run})) as port:
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(request)
        time.sleep(0.3)  # the first upscale is running
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port)) as gone:
                gone.sendall(request)
                time.sleep(0.05)
        got = answer(first)
        first.close()
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        time.sleep(0.5)
        assert len(calls) == 1
        with socket.create_connection(("127.0.0.1", port)) as again:
            again.sendall(request)
            assert again.recv(64).startswith(b"HTTP/1.1 200")
        assert len(calls) == 2
        with socket.create_connection(("127.0.0.1", port)) as cut:
            cut.sendall(request[:len(request) - 40])
            time.sleep(0.2)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port)) as m:
            m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            text = answer(m).decode()
    assert 'route="/api/upscale",status="499"' in text and 'route="/api/upscale",status="400"' not in text


def test_costly_samples_of_a_client_that_left_are_skipped_and_small_ones_are_not_watched(runs, monkeypatch):
    """Samples with a truncation or more than a few small images are watched for their client
    leaving (a truncation can cost BigGAN seconds); one small image is not worth the watch."""
    from ganforge.serve.batching import ModelWorker

    run, seen = runs["test-truncation"], []
    real = ModelWorker._forward

    def slow(self, jobs):
        seen.extend(j.params["seed"] for j in jobs)
        time.sleep(1.0)
        return real(self, jobs)

    monkeypatch.setattr(ModelWorker, "_forward", slow)

    def sample(**body):
        return raw_request("/api/sample", json.dumps({"n": 1, **body}).encode(), "application/json")

    with live_server(create_app({"t": run}, Settings(max_n=256))) as port:
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(sample(seed=1))
        time.sleep(0.3)  # seed 1's pass is running
        for body in (dict(seed=2, truncation=0.5), dict(seed=3, n=256), dict(seed=4)):  # 256 x 8x8
            with socket.create_connection(("127.0.0.1", port)) as gone:
                gone.sendall(sample(**body))
                time.sleep(0.05)
        assert answer(first).startswith(b"HTTP/1.1 200")
        first.close()
        time.sleep(1.5)  # seed 4's pass (not watched) runs
    assert seen == [1, 4]
