"""The page of ``ganforge serve`` in headless Chromium (Debian chromium + chromium-driver, driven
by selenium) against a real uvicorn server on a free loopback port: generate shows an image with
non-blank pixels, an uploaded image comes back translated at its own size, an uploaded recording
comes back vocoded at its own length in an audio player, and /docs renders
with the server's own Swagger UI files. Skipped with the reason when Chromium or selenium is
absent. GANFORGE_SCREENSHOT=path.png keeps a screenshot."""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver "
                                       "(apt-get install chromium chromium-driver)")
selenium = pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
pytest.importorskip("uvicorn")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from test_export import train_family  # noqa: E402

PIXELS_JS = """
const img = document.getElementById(arguments[0]);
if (img.hidden || !img.complete || img.naturalWidth === 0) return null;  // (still) loading
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server did not become healthy in time")


def image_pixels(driver, element_id: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image's RGBA pixels once it has loaded (and has ``size``, (width, height), if given:
    a new result replaces the last one's source)."""
    def loaded(d):
        got = d.execute_script(PIXELS_JS, element_id)
        return got if got and (size is None or tuple(got[:2]) == size) else None

    w, h, data = WebDriverWait(driver, 60).until(loaded)
    return np.array(data, dtype=np.uint8).reshape(h, w, 4)


def api_sample(url: str, seed: int) -> np.ndarray:
    """One sample of the unconditional model through the API, as RGB pixels."""
    import json

    req = urllib.request.Request(url + "/api/sample", data=json.dumps({"model": "unconditional", "n": 1,
                                                                      "seed": seed}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def test_page_generates_and_translates_in_headless_chromium(tmp_path):
    runs = [train_family(name, tmp_path) for name in ("unconditional", "pix2pix", "vocoder")]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", *map(str, runs), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        wait_healthy(url, proc)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1200,1000"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
        driver.set_page_load_timeout(60)
        driver.get(url + "/")
        WebDriverWait(driver, 60).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 3)

        Select(driver.find_element(By.ID, "model")).select_by_value("unconditional")
        driver.find_element(By.ID, "n").clear()
        driver.find_element(By.ID, "n").send_keys("16")
        driver.find_element(By.ID, "generate").click()
        grid = image_pixels(driver, "sample-image")
        # 16 samples of 8 px in a 4 x 4 grid with 2 px padding: 42 x 42, and not blank
        assert grid.shape == (42, 42, 4) and grid[..., :3].std() > 5
        driver.find_element(By.ID, "walk").click()
        walk = image_pixels(driver, "walk-image")
        assert walk.shape[:2] == (12, 8 * 8 + 2 * 9) and walk[..., :3].std() > 5  # 8 frames of 8 px in a row
        # what the strip shows stays said under it when the form changes for the next walk
        driver.find_element(By.ID, "seed-b").clear()
        driver.find_element(By.ID, "seed-b").send_keys("5")
        assert driver.find_element(By.ID, "walk-shown").text == "Shown: seed 0 to seed 1 in 8 steps"
        # a seed past 2^53 is sent as typed (a JavaScript number had rounded it to its even neighbour)
        for field, value in (("n", "1"), ("seed", str(2**53 + 1))):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "generate").click()
        one = image_pixels(driver, "sample-image", size=(8, 8))[..., :3]
        assert np.array_equal(one, api_sample(url, 2**53 + 1)) and not np.array_equal(one, api_sample(url, 2**53))
        driver.find_element(By.ID, "seed").clear()
        driver.find_element(By.ID, "seed").send_keys("-3")
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 30).until(lambda d: "whole number" in d.find_element(By.ID, "error").text)
        driver.find_element(By.ID, "seed").clear()
        driver.find_element(By.ID, "seed").send_keys("0")
        # the server's refusal (n over --max-n, 422) is shown alone: the last grid and its downloads go
        driver.find_element(By.ID, "generate").click()
        image_pixels(driver, "sample-image", size=(8, 8))
        driver.find_element(By.ID, "n").clear()
        driver.find_element(By.ID, "n").send_keys("65")
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 30).until(lambda d: "--max-n 64" in d.find_element(By.ID, "error").text)
        assert not any(driver.find_element(By.ID, i).is_displayed()
                       for i in ("sample-image", "download-sample", "download-npz"))
        driver.find_element(By.ID, "n").clear()
        driver.find_element(By.ID, "n").send_keys("1")

        Select(driver.find_element(By.ID, "model")).select_by_value("pix2pix")
        assert driver.find_element(By.ID, "image-panel").is_displayed()
        src = tmp_path / "input.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)).save(src)
        driver.find_element(By.ID, "upload").send_keys(str(src))
        driver.find_element(By.ID, "run-image").click()
        after = image_pixels(driver, "after")
        before = image_pixels(driver, "before")
        assert after.shape == before.shape == (12, 20, 4)  # translated at its own size
        # the result is the run's own translation of the upload (a 4-step model: nearly gray)
        import torch

        import ganforge

        x = torch.from_numpy(np.asarray(Image.open(src))).permute(2, 0, 1)[None].float() / 127.5 - 1
        y = ganforge.load(runs[1]).translate(x)[0]
        expected = ((y + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert np.abs(after[..., :3].astype(int) - expected).max() <= 1
        assert np.array_equal(before[..., :3], np.asarray(Image.open(src)))
        assert driver.find_element(By.ID, "error").text == ""
        # a file that is no image: no broken image in Before, no earlier result, the server's reason
        notes = tmp_path / "notes.png"
        notes.write_text("not an image")
        driver.find_element(By.ID, "upload").send_keys(str(notes))
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "before").is_displayed())
        driver.find_element(By.ID, "run-image").click()
        WebDriverWait(driver, 30).until(lambda d: "not a readable image" in d.find_element(By.ID, "error").text)
        assert not any(driver.find_element(By.ID, i).is_displayed() for i in ("before", "after", "download-image"))
        assert driver.execute_script("return document.getElementById('before').getAttribute('src')") is None
        driver.find_element(By.ID, "upload").send_keys(str(src))  # an image again: shown again
        assert image_pixels(driver, "before").shape == (12, 20, 4)

        Select(driver.find_element(By.ID, "model")).select_by_value("vocoder")
        assert driver.find_element(By.ID, "audio-panel").is_displayed()
        assert not driver.find_element(By.ID, "image-panel").is_displayed()
        # the last model's upload is gone: no Before (nor file) waiting for the next image model
        assert driver.execute_script("return [document.getElementById('before').hidden, "
                                     "document.getElementById('before').getAttribute('src'), "
                                     "document.getElementById('upload').files.length]") == [True, None, 0]
        from ganforge.data.audio import write_tone_folder

        recording = next(write_tone_folder(tmp_path / "rec", n=1, seconds=0.7, rate=8000, seed=3).glob("*.wav"))
        driver.find_element(By.ID, "audio-upload").send_keys(str(recording))
        driver.find_element(By.ID, "run-audio").click()
        WebDriverWait(driver, 60).until(lambda d: "real time" in d.find_element(By.ID, "audio-timing").text)
        after, before = driver.execute_script("return ['audio-after', 'audio-before'].map("
                                              "(id) => document.getElementById(id).duration)")
        assert after == pytest.approx(0.7, abs=1e-3) and before == pytest.approx(0.7, abs=1e-3)
        assert driver.find_element(By.ID, "download-audio").get_attribute("href").startswith("blob:")
        assert driver.find_element(By.ID, "error").text == ""
        if os.environ.get("GANFORGE_SCREENSHOT"):
            Select(driver.find_element(By.ID, "model")).select_by_value("unconditional")
            driver.find_element(By.ID, "generate").click()
            image_pixels(driver, "sample-image")
            driver.save_screenshot(os.environ["GANFORGE_SCREENSHOT"])
        # /docs renders its operations from the server's own Swagger UI files, nothing else loaded
        driver.get(url + "/docs")
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 5)
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(u.startswith(url + "/") for u in loaded), loaded
        assert any(u.endswith("/docs-assets/swagger-ui-bundle.js") for u in loaded)
        shot = driver.get_screenshot_as_png()
        assert Image.open(io.BytesIO(shot)).size[0] > 0
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
