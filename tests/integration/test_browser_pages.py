"""What a person sees, in a real browser (Debian's `chromium` driven by Playwright): what a reviewer opens
before a promotion (`lfsd ui`: a version's page with its model card and aliases,
the compare view of two concept runs) and the page `lfsd serve` puts at `/` (type a prompt, submit, an image
appears with the version that drew it).

The workspace is the real pipeline's: two concepts onboarded by `chains.onboard` in this process (the same
steps as `lfsd onboard`, training in-process instead of on Ray). Screenshots go to $LFSD_SCREENSHOTS when set
(`LFSD_SCREENSHOTS=docs/figures/browser` re-makes the committed ones), else to a temporary
folder, so `make test` leaves the repository as it found it. Skips, in one line, only where no chromium
binary exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, make_workspace
from tests.integration.services import cli_env, free_port, stop, wait_http

CHROMIUM = os.environ.get("LFSD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium, or set LFSD_CHROMIUM)"),
]
VIEWPORT = {"width": 1280, "height": 800}
NAME = "lfs-diffusion"  # params.yaml pipeline.model_name


@dataclass
class Reviewed:
    root: Path
    concepts: list[str]  # in onboarding order
    runs: list[tuple[str, str]]  # (run id, run name) of each concept's run
    experiment: str
    ui: str  # the MLflow UI's base URL
    serve: str  # `lfsd serve`'s base URL
    serve_proc: subprocess.Popen
    serve_log: Path


def _quiet(message: str) -> None:
    pass


def _onboard_two(root: Path, tmp: Path) -> tuple[list[str], list[tuple[str, str]], str]:
    """Two concept folders through the whole pipeline; (names, (run id, run name) each, experiment id)."""
    import mlflow

    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    ws = load_workspace(root)
    results = [onboard(ws, f, launcher=in_process(2), log=_quiet) for f in write_concepts(tmp, n=2, shots=3, seed=31)]
    assert [r.status for r in results] == ["onboarded", "onboarded"], results
    client = mlflow.MlflowClient()
    runs = [client.get_run(r.run_id) for r in results]
    return [r.concept for r in results], [(r.info.run_id, r.info.run_name) for r in runs], runs[0].info.experiment_id


def _start(root: Path, args: list[str], log: Path) -> subprocess.Popen:
    """An `lfsd` command on `root` in a process group of its own (stop() ends the whole group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "components.cli", *args],
        cwd=root,
        env=cli_env(root),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, tiny_base_dir):
    """A workspace after two real onboardings with `lfsd ui` on it (started first: its start-up overlaps the
    onboardings) and `lfsd serve` (started once version 2 is production: Ray's start-up overlaps the UI tests)."""
    import mlflow

    top = tmp_path_factory.mktemp("browser")
    root = top / "ws"
    mp = pytest.MonkeyPatch()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
        mp.delenv(var, raising=False)
    mp.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
    mp.setenv("LFSD_WORKSPACE", str(root))
    make_workspace(root, tiny_base_dir, NO_RAY)
    ui_port, serve_port = free_port(), free_port()
    ui = _start(root, ["ui", "--port", str(ui_port)], top / "ui.log")
    served = None
    try:
        names, runs, experiment = _onboard_two(root, top / "in")
        served = _start(root, ["serve", "--port", str(serve_port)], top / "serve.log")
        wait_http(f"http://127.0.0.1:{ui_port}/health", ui, 120, top / "ui.log")
        yield Reviewed(
            root,
            names,
            runs,
            experiment,
            f"http://127.0.0.1:{ui_port}",
            f"http://127.0.0.1:{serve_port}",
            served,
            top / "serve.log",
        )
    finally:
        stop(served)
        stop(ui)
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        mp.undo()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: chromium refuses to start as root (CI runs as root) with its sandbox on.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("LFSD_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page that records what a person would see go wrong: uncaught script errors and failed calls to the
    server it came from (MLflow's UI asks `users/current` of an auth plugin this server does not run: a 404
    nobody sees, left out)."""

    def __init__(self, browser, origin: str, height: int = 800, width: int = 1280):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"script error: {e}"))
        self.page.on("response", lambda r: self._response(r, origin))

    def _response(self, r, origin: str) -> None:
        if r.url.startswith(origin) and r.status >= 400 and not r.url.endswith("/mlflow/users/current"):
            self.errors.append(f"{r.status} {r.url}")

    def clean(self) -> None:
        """No failed call, no script error, no error banner on the page."""
        banners = [b for b in self.page.locator("[role=alert]").all_inner_texts() if b.strip()]
        assert not self.errors and not banners, (self.errors, banners)

    def close_assistant(self) -> None:
        """MLflow's assistant panel takes a third of the screen; a reviewer closes it."""
        close = self.page.get_by_role("button", name="Close")
        if close.count():
            close.first.click()


def test_version_page_shows_its_model_card(reviewed, browser, shots):
    from playwright.sync_api import expect

    w = Watched(browser, reviewed.ui, height=900)
    w.page.goto(f"{reviewed.ui}/#/models/{NAME}/versions/2")
    first, second = reviewed.concepts
    heading = w.page.get_by_role("heading", name=f"{NAME} v2")
    heading.wait_for(timeout=60_000)
    assert f"adds {second}" in heading.inner_text(), heading.inner_text()
    body = expect(w.page.locator("body"))  # retries: the aliases arrive with the registered model, after the card
    for text in (first, second, f"<{second}>", "Gate: passed", "avg_forgetting", "@ production", "lfsd generate"):
        body.to_contain_text(text, timeout=30_000)
    w.close_assistant()
    w.clean()
    w.page.screenshot(path=shots / "ui-version-card.png")


def test_compare_view_shows_the_two_concept_runs(reviewed, browser, shots):
    from playwright.sync_api import expect

    w = Watched(browser, reviewed.ui, height=1150)
    ids = json.dumps([run_id for run_id, _ in reviewed.runs])
    query = urllib.parse.urlencode({"runs": ids, "experiments": json.dumps([reviewed.experiment])})
    w.page.goto(f"{reviewed.ui}/#/compare-runs?{query}")
    w.page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
    w.page.get_by_text("Run details").wait_for(timeout=60_000)
    w.close_assistant()
    w.page.get_by_role("switch", name="Parameters - Show diff only").click()  # concept and step: what differs
    w.page.get_by_text("Visualizations").click()  # folded: the tables are what a reviewer reads
    body = expect(w.page.locator("body"))
    for (_, run_name), concept in zip(reviewed.runs, reviewed.concepts):
        assert concept in run_name, (concept, run_name)
        body.to_contain_text(run_name, timeout=30_000)
    for metric in ("avg_forgetting", *(f"fidelity.{c}" for c in reviewed.concepts)):
        body.to_contain_text(metric, timeout=30_000)
    w.clean()
    w.page.screenshot(path=shots / "ui-compare-runs.png")


def test_serve_page_draws_an_image_and_names_its_version(reviewed, browser, shots):
    wait_http(f"{reviewed.serve}/health", reviewed.serve_proc, 240, reviewed.serve_log)
    w = Watched(browser, reviewed.serve, height=480, width=900)
    w.page.goto(f"{reviewed.serve}/")
    second = reviewed.concepts[1]
    w.page.locator(f"#concept option[value='{second}']").wait_for(state="attached", timeout=30_000)
    w.page.select_option("#concept", second)
    w.page.fill("#prompt", f"a <{second}> heart on a white background")
    w.page.fill("#num_images", "2")
    w.page.click("#generate")
    images = w.page.locator("#images img")
    images.nth(1).wait_for(timeout=120_000)
    assert images.count() == 2
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert all(ok and wd > 0 and wd == ht for ok, wd, ht in sizes), sizes  # decoded PNGs, square
    assert w.page.inner_text("#version") == "2"  # the version that drew them: production since the second gate
    assert w.page.inner_text("#serving") == "2" and not w.page.inner_text("#error").strip()
    w.clean()
    w.page.screenshot(path=shots / "serve-page.png")
