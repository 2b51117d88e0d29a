"""The voice → face web page (`s2f serve`) as a person uses it: Debian's headless Chromium, driven by Selenium through
chromium-driver, against a real server on 127.0.0.1 with two families' champions in a real MLflow store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_server import free_port
from tests.serving import REAL_CLIP, tiny_gan, tiny_models
from tests.serving.conftest import BIN, _stop

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def champions(tracking_store) -> str:
    """speech2face (tagged as trained on the demo corpus, as `register` does) and wav2pix, each @champion."""
    import mlflow

    from s2f.serving.log import log_speech2face, log_voice_to_face

    encoder, decoder = tiny_models(tracking_store.root)
    with mlflow.start_run():
        composite = log_speech2face(encoder, decoder, registered_model_name="speech2face")
        gan = log_voice_to_face(tiny_gan(tracking_store.root, "wav2pix"), "wav2pix", registered_model_name="wav2pix")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("speech2face", "champion", composite.registered_model_version)
    client.set_model_version_tag("speech2face", composite.registered_model_version, "data.source", "demo")
    client.set_registered_model_alias("wav2pix", "champion", gan.registered_model_version)
    return tracking_store.uri


@pytest.fixture(scope="module")
def page(champions, tmp_path_factory) -> str:
    """`s2f serve` on a free port of 127.0.0.1; its URL once the page answers."""
    from s2f.io.http import wait_until_answers

    port, log = free_port(), tmp_path_factory.mktemp("page") / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": champions, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "s2f.cli", "serve", "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_until_answers(f"{url}/api/models", 120, gave_up=lambda: proc.poll() is not None):
        _stop(proc) if proc.poll() is None else None
        pytest.fail(f"s2f serve did not come up:\n{log.read_text()[-3000:]}")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("Debian's chromium and chromium-driver are not installed: `make test` installs them "
                    "(S2F_SETUP_BROWSER=1 bash scripts/setup.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,800",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):  # a beep as the microphone
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str) -> None:
    browser.get(url)
    _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")


def _wait(browser, condition, seconds: float = 90):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(condition)


def _faces(browser) -> list[dict]:
    """The face images on the page, as the browser decoded them."""
    return browser.execute_script(
        "return [...document.querySelectorAll('img.face')].map(i => ({alt: i.alt, complete: i.complete, "
        "width: i.naturalWidth, caption: i.nextElementSibling.textContent}));")


def _upload(browser, path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "voice").send_keys(str(path.resolve()))  # Chromium takes canonical paths only
    browser.find_element(By.ID, "send").click()


def test_a_real_voice_gives_a_face_from_each_family(browser, page, realsample, tmp_path):
    _open(browser, page)
    _upload(browser, realsample / REAL_CLIP)   # a video: the page takes it as it is, the server extracts its audio
    faces = _wait(browser, lambda d: len(_faces(d)) == 2 and all(f["complete"] and f["width"] for f in _faces(d))
                  and _faces(d))
    assert [f["alt"] for f in faces] == ["face drawn by speech2face", "face drawn by wav2pix"]
    assert all(f["width"] == 64 for f in faces)  # the tiny models' image size, decoded by the browser
    text = browser.find_element("id", "status").text
    assert text.startswith(f"Faces for {Path(REAL_CLIP).name}")
    notes = browser.find_element("id", "notes").text
    assert "speech2face v1 was trained on the synthetic demo corpus" in notes and "wav2pix" not in notes
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_a_text_file_is_refused_with_its_reason(browser, page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a voice, only a few words of text\n" * 20)
    _open(browser, page)
    _upload(browser, notes)
    status = _wait(browser, lambda d: "refused" in d.find_element("id", "status").get_attribute("class")
                   and d.find_element("id", "status"))
    assert status.text.startswith("Refused: not_audio") and "notes.txt" in status.text
    assert _faces(browser) == []


def test_a_recording_from_the_microphone_gives_faces(browser, page):
    _open(browser, page)
    browser.find_element("id", "record").click()   # Chromium's fake microphone: a beep, recorded as WebM/Opus
    faces = _wait(browser, lambda d: len(_faces(d)) == 2 and all(f["width"] for f in _faces(d)) and _faces(d))
    assert [f["caption"].split()[0] for f in faces] == ["speech2face", "wav2pix"]
    assert "recording.webm" in browser.find_element("id", "status").text
