"""The main interface in a real browser: JupyterLab runs notebooks 01 and 02 with the project's kernel.

A JupyterLab server starts on 127.0.0.1 (a free port, a random token, its own settings folders) over
copies of the notebooks (quick profile, 5 epochs); headless Chromium, driven by Playwright, opens each
notebook, runs all cells from the Run menu and waits until every code cell has an execution count.
Then, in the page as a learner sees it: no error output, every figure rendered as an image, at most a
few stderr lines, and in 02 the training progress drawn as a widget bar (not as text bars on stderr).

Needs Debian's `chromium` (`.ci/run` installs it) and Playwright (test extra); skips with the reason
where either is missing. Screenshots of both notebooks land in the test's tmp_path.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml

from nbn_tutorial import notebooks as runner

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOKS = ["01_long_tailed_data.ipynb", "02_baseline_bn.ipynb"]
MAX_STDERR_LINES = 3
SERVER_START_S = 120
RUN_ALL_S = 240

pytestmark = [pytest.mark.alone, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="no Chromium: the JupyterLab browser test needs Debian's chromium "
                                       "(apt-get install -y chromium; .ci/run installs it)")]

SETTINGS = {  # every cell stays in the page (no windowing), and no news or update prompt covers it
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}

# The notebook in front: JupyterLab may restore other notebooks of the workspace as hidden tabs.
FRONT = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PROMPTS = f"""() => Array.from(document.querySelectorAll('{FRONT} .jp-CodeCell .jp-InputArea-prompt'))
    .map(prompt => prompt.textContent)"""
ALL_PROMPTS_NUMBERED = f"""() => {{
    const prompts = ({PROMPTS})();
    return prompts.length > 0 && prompts.every(prompt => /\\[\\d+\\]/.test(prompt));
}}"""
PAGE_STATE = f"""() => {{
    const all = selector => Array.from(document.querySelectorAll('{FRONT} ' + selector));
    return {{
        stderr: all('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').map(o => o.textContent),
        images: all('.jp-RenderedImage img').map(image => image.naturalWidth),
        widgets: all('.jp-OutputArea-output .widget-hprogress').length,
        finished: all('.jp-OutputArea-output .widget-hprogress .progress-bar-success').length,
        texts: all('.jp-OutputArea-output').map(output => output.textContent),
    }};
}}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_kernel(base: str, token: str, name: str) -> None:
    """Until the notebook's kernel is started, idle and connected to the page.

    JupyterLab's execution indicator reads "idle" before the kernel exists, and cells run then are lost.
    """
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        sessions = json.loads(urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=10).read())
        kernels = [session["kernel"] for session in sessions if session["path"] == name]
        if kernels and kernels[0]["execution_state"] == "idle" and kernels[0]["connections"] >= 1:
            return
        time.sleep(0.5)
    raise AssertionError(f"the kernel of {name} was not ready within {SERVER_START_S} s")


def _figure_cells(path: Path) -> int:
    """Code cells of a notebook that draw a figure (they call nbt.plots)."""
    return sum(cell.cell_type == "code" and "nbt.plots." in cell.source
               for cell in nbformat.read(str(path), as_version=4).cells)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over prepared copies of 01 and 02: yields (base URL, token, notebook folder)."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is in the test extra: pip install -e '.[test]'")
    home = tmp_path_factory.mktemp("lab")
    profile = home / "browser.yaml"
    profile.write_text(yaml.safe_dump({**runner.load_profile("quick"), "epochs": 5}))
    root = home / "notebooks"
    runner.prepare_notebooks(root, profile, only=",".join(name[:2] for name in NOTEBOOKS))
    for name, content in SETTINGS.items():
        (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "settings" / name).write_text(json.dumps(content))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    env.pop("NBN_PROGRESS", None)
    log = open(home / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
                               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert server.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer within 2 minutes"
                time.sleep(0.5)
        yield base, token, root
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """Headless Debian Chromium with a fresh profile folder, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


@pytest.mark.parametrize("name", NOTEBOOKS, ids=lambda name: name[:2])
def test_jupyterlab_runs_the_notebook_cleanly(lab, browser, name, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    base, token, root = lab
    page = browser.new_page()
    try:
        page.goto(f"{base}/lab/tree/{name}?reset&token={token}")  # reset: no other notebook restored
        page.wait_for_selector(".jp-Notebook", timeout=SERVER_START_S * 1000)
        _wait_for_kernel(base, token, name)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(ALL_PROMPTS_NUMBERED, timeout=RUN_ALL_S * 1000)
        except PlaywrightTimeout:
            prompts = page.evaluate(PROMPTS)
            raise AssertionError(f"not every cell ran within {RUN_ALL_S} s: prompts {prompts}") from None
        finally:
            page.screenshot(path=str(tmp_path / f"{name}.png"))
        state = page.evaluate(PAGE_STATE)
        if state["widgets"]:
            page.locator(f"{FRONT} .widget-hprogress").first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / f"{name}-progress.png"))
    finally:
        page.close()

    shot = tmp_path / f"{name}.png"
    stderr_lines = [line for text in state["stderr"] for line in text.splitlines() if line.strip()]
    assert not any("Traceback" in text or "Error" in text for text in state["stderr"] + state["texts"]), shot
    assert len(stderr_lines) <= MAX_STDERR_LINES, (stderr_lines, shot)
    figures = _figure_cells(root / name)
    assert len(state["images"]) >= figures > 0, (state["images"], shot)
    assert all(width > 100 for width in state["images"]), (state["images"], shot)   # loaded, not broken
    if name.startswith("02"):
        assert state["widgets"] == state["finished"] == 1, ("one finished widget progress bar", state, shot)
        assert not any("%|" in text for text in state["texts"]), ("tqdm text bars in the page", shot)
