"""Real-browser fixtures: the real `streamlit run app.py` server and Debian's Chromium.

The server runs exactly as a user starts it (same entry point, same `.streamlit/config.toml`),
on a free localhost port with a fresh workspace. The browser is the system Chromium driven by
Playwright; no browser is ever downloaded. Every test in this folder is marked `e2e`.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import ROOT
from tests.e2e.streamlit_ui import COUNT_RUNS

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """One `streamlit run app.py` process with its own workspace, stopped by its PID."""

    def __init__(self, workspace: Path, log_dir: Path) -> None:
        self.workspace = workspace
        self.log_path = log_dir / f"streamlit-{time.monotonic_ns()}.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self, timeout: float = 60) -> "AppServer":
        self.port = free_port()
        env = os.environ | {
            "CNN_STUDIO_WORKSPACE": str(self.workspace),
            # Two shared cores: the app's training thread must not take more.
            "OMP_NUM_THREADS": "2",
            "MKL_NUM_THREADS": "2",
            "PYTHONUNBUFFERED": "1",
        }
        cmd = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(self.port),
            "--server.headless", "true",
            "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false",
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would: no cleanup code runs."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., AppServer]]:
    """Start app servers on demand (a fresh workspace unless one is given); all stop afterwards."""
    servers: list[AppServer] = []

    def start(workspace: Path | None = None) -> AppServer:
        server = AppServer(workspace or tmp_path / f"workspace{len(servers)}", tmp_path)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One server with a fresh workspace shared by the tests of a module."""
    base = tmp_path_factory.mktemp("app")
    app = AppServer(base / "workspace", base).start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def playwright_driver():
    if not CHROMIUM:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it with apt)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def _contexts(playwright_driver, tmp_path_factory) -> Iterator[dict]:
    """One Chromium per locale for the whole session, each with a fresh profile folder."""
    contexts: dict = {}
    yield contexts
    for context in contexts.values():
        context.close()


@pytest.fixture
def open_browser(playwright_driver, _contexts, tmp_path_factory, request):
    """Chromium in the given locale (launched once per session); returns its context.

    Each tab is its own Streamlit session. After the test every tab is closed, and when the
    test failed each is first saved to artifacts/screenshots/failed-*.png.
    """

    def launch(locale: str = "en-US"):
        if locale not in _contexts:
            context = playwright_driver.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                locale=locale,
                viewport=VIEWPORT,
            )
            context.set_default_timeout(30_000)
            context.add_init_script(COUNT_RUNS)
            _contexts[locale] = context
        return _contexts[locale]

    yield launch
    report = getattr(request.node, "report_call", None)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    for locale, context in _contexts.items():
        for n, tab in enumerate(context.pages):
            if report is not None and report.failed:
                try:
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    tab.screenshot(path=str(SCREENSHOTS / f"failed-{name}-{locale}-{n}.png"), full_page=True)
                except Exception:  # a crashed tab must not hide the test's own failure
                    pass
            tab.close()


@pytest.fixture
def browser(open_browser):
    """An English browser context."""
    return open_browser("en-US")


def make_split(workspace: Path, classes: int = 3, per_class: int = 30, size: int = 32) -> Path:
    """A small demo set split into the workspace and made current, as the Data page leaves it."""
    from core.data.demo import make_demo
    from core.data.split import split_dataset
    from core.workspace import Workspace

    ws = Workspace.open(workspace)
    source = make_demo(ws.datasets / "demo", classes=classes, per_class=per_class, size=size, seed=0)
    out = ws.splits / "demo"
    split_dataset(source, out, 0.2, 0.2, 42)
    ws.remember(current_split=str(out.resolve()))
    return out


def cli(*args: str, workspace: Path, timeout: float = 300) -> list[dict]:
    """Run `python -m core ... --json` against `workspace`; its JSON records."""
    env = os.environ | {"CNN_STUDIO_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "core", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    import json

    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
