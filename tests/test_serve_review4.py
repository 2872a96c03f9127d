"""Review 4 findings on ``ganforge serve``, each reproduced: a stop while a pass runs for a client
that has left ends with its code, not an abort; --port's help names its default; the page
(headless Chromium) downloads the grid on screen, keeps it when the download fails, shows that a
request runs, points to the Token box on a 401 and names the class a walk uses."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import ganforge
from conftest import ROOT

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from ganforge.serve.server import INLINE_PNG_VALUES  # noqa: E402
from test_export import train_family  # noqa: E402
from test_serve import raw_request  # noqa: E402
from test_serve_review_fixes import finish, free_port, wait_healthy  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

# `ganforge serve` with (argv[1]) the Ctrl-C grace and each forward pass first spending (argv[2])
# seconds in torch's own kernels
CHILD_BUSY_TORCH = """
import sys, time, torch
from ganforge import cli
from ganforge.commands import serve
from ganforge.serve.batching import ModelWorker
serve.GRACE_S, busy = float(sys.argv[1]), float(sys.argv[2])
real_forward = ModelWorker._forward
def forward(self, jobs):
    a, end = torch.randn(300, 300), time.monotonic() + busy
    while time.monotonic() < end:
        a = torch.tanh(a @ a)
    return real_forward(self, jobs)
ModelWorker._forward = forward
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("review4-runs")
    return {name: train_family(name, root) for name in ("unconditional", "conditional")}


def given_up_then_stopped(run_dir, *, grace: float, busy: float, sig) -> tuple[int, str, str]:
    """A costly sample whose client leaves while its pass runs (the server answers 499 and
    uvicorn holds no request), then ``sig``: the server's exit code, stdout and stderr."""
    values = ganforge.load(run_dir).sample(1).numel()
    n = INLINE_PNG_VALUES // values + 1  # watched for its client leaving
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", CHILD_BUSY_TORCH, str(grace), str(busy), "serve", str(run_dir),
                             "--port", str(port), "--max-n", str(n), "--threads", "1"],
                            env={**ENV, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_healthy(port, proc)
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(raw_request("/api/sample", json.dumps({"n": n}).encode(), "application/json"))
        time.sleep(1.0)  # its pass is in torch
    time.sleep(1.0)  # the server has seen the client leave
    proc.send_signal(sig)
    return finish(proc, timeout=30)


def test_a_stop_while_a_pass_runs_for_a_client_that_left_exits_with_its_code_not_an_abort(runs):
    """curl --max-time 3 during a 40-s upscale, then SIGTERM: uvicorn saw nothing in flight, the
    models' threads were given 5 s, and the interpreter exited under the one still in torch
    (SIGABRT, exit 134, or SIGSEGV). Now the pass gets the grace; past it, the documented line and
    143; a pass that ends within the grace stops the server silently with 0."""
    code, out, err = given_up_then_stopped(runs["unconditional"], grace=1.0, busy=8.0, sig=signal.SIGTERM)
    assert "terminate called" not in err, err
    assert code == 143 and err == "ganforge: stopped by SIGTERM; requests in flight were dropped\n", (code, err)
    assert "serving unconditional" in out
    code, out, err = given_up_then_stopped(runs["unconditional"], grace=6.0, busy=3.0, sig=signal.SIGINT)
    assert code == 0 and err == "", (code, err)


def test_port_help_names_its_default():
    got = subprocess.run([sys.executable, "-m", "ganforge", "serve", "--help"], env={**ENV, "COLUMNS": "200"},
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    line = next(x for x in got.stdout.splitlines() if x.strip().startswith("--port"))
    assert "(default 8000)" in line, line


# `ganforge serve` whose forward passes of 7 images take 3 s more (a request that runs a while)
CHILD_SLOW_SEVEN = """
import sys, time
from ganforge import cli
from ganforge.serve.batching import ModelWorker
real_forward = ModelWorker._forward
def forward(self, jobs):
    if any(j.params.get("n") == 7 for j in jobs):
        time.sleep(3)
    return real_forward(self, jobs)
ModelWorker._forward = forward
sys.exit(cli.main(sys.argv[1:]))
"""

# every fetch the page makes, recorded; with window.failNpz, an NPZ request answered 500
RECORD_FETCH = """
window.sent = [];
const real = window.fetch;
window.fetch = (path, options) => {
  const body = options && typeof options.body === "string" ? JSON.parse(options.body) : null;
  window.sent.push([path, body]);
  if (window.failNpz && body && body.format === "npz")
    return Promise.resolve(new Response(JSON.stringify({error: "npz failed here"}), {status: 500}));
  return real(path, options);
};
"""


def test_page_with_a_token_shows_progress_downloads_the_grid_on_screen_and_names_the_walks_class(runs, tmp_path):
    """Headless Chromium on a server with --token: without a token (and after a right one, with a
    wrong one) the page says to use the Token box and shows no stale models; a request that runs
    disables its button and says "working..."; Download NPZ asks for the grid on screen, and its
    failure leaves the grid; an error is shown beside its panel, on screen; a walk of a conditional
    model without a class says which class it walks; a grid that comes back after another model was
    chosen is not shown under that model (it had been, with its Download NPZ)."""
    browser = pytest.importorskip("test_serve_browser")
    if not (browser.CHROMIUM and browser.DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD_SLOW_SEVEN, "serve", str(runs["conditional"]),
                             str(runs["unconditional"]), "--port", str(port), "--token", "secret"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    classes = ganforge.load(runs["conditional"]).class_names
    shots = os.environ.get("GANFORGE_SHOTS")
    driver = None
    try:
        browser.wait_healthy(url, proc)
        options = browser.webdriver.ChromeOptions()
        options.binary_location = browser.CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1200,700"):
            options.add_argument(flag)
        driver = browser.webdriver.Chrome(options=options,
                                          service=browser.webdriver.ChromeService(executable_path=browser.DRIVER))
        driver.set_page_load_timeout(60)
        find = driver.find_element

        def text(element_id: str) -> str:
            return find(By.ID, element_id).text

        def error_beside(place: str) -> bool:  # the error follows ``place`` and is on screen
            return driver.execute_script(
                "const e = document.getElementById('error'), r = e.getBoundingClientRect();"
                "return e.previousElementSibling.id === arguments[0] && r.top >= 0 && r.bottom <= innerHeight"
                " && e.offsetHeight > 0;", place)

        def shot(name: str) -> None:
            if shots:
                driver.save_screenshot(os.path.join(shots, name))

        def locked_out() -> None:
            WebDriverWait(driver, 30).until(lambda d: text("status") == "token required")
            assert "enter the server's token in the Token box" in text("error"), text("error")
            assert "Authorization" not in text("error") and error_beside("token-box")
            assert len(Select(find(By.ID, "model")).options) == 0 and text("model-info") == ""
            assert not any(find(By.ID, i).is_displayed() for i in ("sample-panel", "image-panel", "sample-image"))

        driver.get(url + "/")
        locked_out()
        shot("1_no_token.png")
        find(By.ID, "token").send_keys("secret", Keys.TAB)
        WebDriverWait(driver, 30).until(lambda d: text("status") == "2 model(s)")
        assert text("error") == "" and find(By.ID, "sample-panel").is_displayed()
        # the API's sample_labels, as a person reads it
        assert text("model-info").endswith("can: interpolate, sample, sample by class"), text("model-info")

        # the walk's class: the default named, as `ganforge interpolate` names it, and a chosen one
        assert text("walk-class") == f"walks class {classes[0]} (the default; choose another with Class)"
        Select(find(By.ID, "class")).select_by_value("1")
        assert text("walk-class") == f"walks class {classes[1]}"
        # the strip drawn says its class under it, which the label beside the form no longer does
        # once another class is chosen for the next walk
        find(By.ID, "walk").click()
        WebDriverWait(driver, 30).until(lambda d: text("walk-shown") != "")
        Select(find(By.ID, "class")).select_by_value("")
        assert text("walk-shown") == f"Shown: seed 0 to seed 1 in 8 steps, class {classes[1]}"

        # a request that runs: its button disabled, "working...", and a second click sends nothing
        driver.execute_script(RECORD_FETCH)
        find(By.ID, "n").clear()
        find(By.ID, "n").send_keys("7")
        find(By.ID, "generate").click()
        WebDriverWait(driver, 5).until(lambda d: text("sample-busy") == "working...")
        assert not find(By.ID, "generate").is_enabled() and not find(By.ID, "random-seed").is_enabled()
        shot("2_working.png")
        driver.execute_script("document.getElementById('generate').click();")
        find(By.ID, "n").send_keys(Keys.ENTER)
        browser.image_pixels(driver, "sample-image")
        WebDriverWait(driver, 10).until(lambda d: text("sample-busy") == "" and find(By.ID, "generate").is_enabled())
        sent = driver.execute_script("return window.sent")
        assert [p for p, _ in sent] == ["/api/sample"], sent
        grid = sent[0][1]

        # Download NPZ after editing seed and n: the grid on screen's request, in NPZ
        for field, value in (("seed", "5"), ("n", "2")):
            find(By.ID, field).clear()
            find(By.ID, field).send_keys(value)
        find(By.ID, "download-npz").click()
        WebDriverWait(driver, 30).until(lambda d: len(d.execute_script("return window.sent")) == 2)
        assert driver.execute_script("return window.sent")[1][1] == {**grid, "format": "npz"}
        assert grid["seed"] == 0 and grid["n"] == 7
        # a failed NPZ request: its error beside the sample form, the grid still there
        driver.execute_script("window.failNpz = true;")
        WebDriverWait(driver, 10).until(lambda d: find(By.ID, "download-npz").is_enabled())
        find(By.ID, "download-npz").click()
        WebDriverWait(driver, 30).until(lambda d: "npz failed here" in text("error"))
        assert error_beside("sample-form")
        assert all(find(By.ID, i).is_displayed() for i in ("sample-image", "download-sample", "download-npz"))
        shot("3_npz_failed.png")

        # another model chosen while a grid is on its way: the grid is for the first, and is dropped
        driver.execute_script("window.failNpz = false;")
        WebDriverWait(driver, 10).until(lambda d: find(By.ID, "generate").is_enabled())
        find(By.ID, "n").clear()
        find(By.ID, "n").send_keys("7")
        find(By.ID, "generate").click()
        WebDriverWait(driver, 5).until(lambda d: text("sample-busy") == "working...")
        models = Select(find(By.ID, "model"))
        models.select_by_index(1)
        assert "can: interpolate, sample" in text("model-info") and "by class" not in text("model-info")
        WebDriverWait(driver, 30).until(lambda d: text("sample-busy") == "" and find(By.ID, "generate").is_enabled())
        time.sleep(0.5)  # the blob read after the answer
        assert not any(find(By.ID, i).is_displayed() for i in ("sample-image", "download-sample", "download-npz"))
        assert text("error") == ""
        shot("3b_switched.png")
        models.select_by_index(0)

        # a wrong token after the right one: nothing of the models stays
        find(By.ID, "token").clear()
        find(By.ID, "token").send_keys("wrong", Keys.TAB)
        locked_out()
        shot("4_wrong_token.png")
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
