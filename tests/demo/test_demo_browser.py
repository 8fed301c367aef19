"""The web demo in a real browser: headless Chromium uploads the sample photo and gets the six views and
the 3D viewer. Marked ``browser`` (and slow); run with ``python -m pytest -m browser``. Needs gradio and
selenium (``pip install -e ".[demo]"``) and Debian's ``chromium`` + ``chromium-driver``. The screenshot is
saved to ``$FACELIFT_TEST_ARTIFACTS`` (default ``test-artifacts/``) as ``demo.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (localhost)
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def test_upload_shows_six_views_and_the_3d_viewer(tmp_path):
    pytest.importorskip("gradio")
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("needs chromium and chromium-driver (apt install chromium chromium-driver)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _pipeline_helpers import SAMPLE_PHOTO, make_tiny_pipeline

    weights = make_tiny_pipeline(tmp_path / "weights")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "facelift.cli.main", "serve", "--weights", str(weights), "--port", str(port), "--device", "cpu",
         "--frames", "6", "--resolution", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    driver = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/", 180)
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 240)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]")))
        upload.send_keys(str(SAMPLE_PHOTO))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(lambda d: "Gaussians" in (d.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value") or ""))
        views = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#views img")))
        assert views.get_attribute("src")
        assert wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model3d canvas"))
        width = driver.execute_script("return document.querySelector('#views img').naturalWidth")
        assert width == 6 * 32  # the six 32 px views side by side
        status = driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value")
        artifacts = Path(os.environ.get("FACELIFT_TEST_ARTIFACTS", "test-artifacts"))
        artifacts.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(artifacts / "demo.png"))
        assert (artifacts / "demo.png").stat().st_size > 10_000, status
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
