"""reports/index.html in headless Chromium: every image renders, the tables are there, no network request.

Chromium is driven over the Chrome DevTools Protocol on a pipe (--remote-debugging-pipe: JSON messages
separated by NUL bytes on file descriptors 3 and 4), standard library only: nothing is downloaded at test
time. CI installs Debian's `chromium` through .ci/system-packages; the test skips only when no Chromium
binary is found.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines import report
from tests.unit.test_report import PARAMS, build_root

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 60.0
LOCAL_SCHEMES = ("file:", "data:", "about:")
PROBE = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const heat = document.querySelector('table[data-table="cohorts"] td.heat');
  return {
    title: document.title,
    images: imgs.map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                            shown: i.getBoundingClientRect().width})),
    tables: Object.fromEntries(Array.from(document.querySelectorAll('table[data-table]')).map(t =>
      [t.dataset.table, {rows: t.tBodies[0].rows.length, columns: t.tHead.rows[0].cells.length}])),
    scripts: document.scripts.length,
    heatColour: heat ? getComputedStyle(heat).backgroundColor : null,
    pageWidth: document.documentElement.scrollWidth,
    viewWidth: window.innerWidth,
  };
})()"""


def chromium_binary() -> str | None:
    """The Chromium executable: $CHROMIUM, else the first of BROWSERS on PATH."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return shutil.which(configured) or configured
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class DevTools:
    """A minimal CDP client over Chromium's --remote-debugging-pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child, self._writer = os.pipe()
        self._reader, from_child = os.pipe()

        def wire() -> None:  # the child reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--mute-audio", "--window-size=1280,900",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: a stray request fails fast
                "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=wire, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        """The next NUL-terminated JSON message from the browser."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._reader], [], [], left)[0]:
                raise TimeoutError("no reply from Chromium over the DevTools pipe")
            chunk = os.read(self._reader, 1 << 16)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()}): {err}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events received meanwhile are kept in self.events."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Wait for an event (possibly already received)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        """Ask the browser to exit, then make sure it did."""
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._reader, self._writer):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    """A headless Chromium (skips when none is installed)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip(f"no Chromium binary: none of {', '.join(BROWSERS)} on PATH and $CHROMIUM unset "
                    "(CI installs Debian's chromium via .ci/system-packages)")
    tools = DevTools(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield tools
    finally:
        tools.close()


def open_page(browser: DevTools, page: Path) -> dict[str, Any]:
    """Open a local page in a new tab: the probe's answer and the URL of every request the tab made."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        browser.send(f"{domain}.enable", session=session)
    browser.events.clear()
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    browser.wait_for("Page.loadEventFired")
    probe = browser.send("Runtime.evaluate", {"expression": PROBE, "awaitPromise": True, "returnByValue": True},
                         session=session)
    if "exceptionDetails" in probe:
        raise RuntimeError(f"probe failed: {probe['exceptionDetails']}")
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session]
    browser.send("Target.closeTarget", {"targetId": target})
    return {"page": page, "probe": probe["result"]["value"], "requests": requests}


@pytest.fixture(scope="module")
def loaded(browser: DevTools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fake run's report opened in the browser."""
    root = build_root(tmp_path_factory.mktemp("report-e2e"))
    return open_page(browser, Path(report.run(PARAMS, root=root)["path"]))


def test_page_loaded(loaded: dict[str, Any]) -> None:
    """The report opened as a file and has its title, and no script."""
    assert loaded["probe"]["title"].startswith("churn-clv report")
    assert loaded["probe"]["scripts"] == 0


def test_every_image_rendered(loaded: dict[str, Any]) -> None:
    """15 figures (6 churn PNGs, 4 CLV plots, churn/CLV by segment, funnel, migration customers/revenue), each
    decoded with a size and laid out."""
    images = loaded["probe"]["images"]
    assert len(images) == 15
    broken = [i["alt"] for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert broken == []
    assert all(i["shown"] > 100 for i in images)


def test_expected_tables(loaded: dict[str, Any]) -> None:
    """Model-vs-baseline, segment summary and cohort matrix tables with their rows (plus the others)."""
    tables = loaded["probe"]["tables"]
    assert tables["churn-models"]["rows"] == 3  # lightgbm, log_rfm, lightgbm_uncalibrated
    assert tables["churn-vs-best"]["rows"] == 2
    assert tables["segments"]["rows"] == 4  # champions/low (2), lost/high, the markup label/medium, the total
    assert tables["cohorts"] == {"rows": 3, "columns": 2 + 3}  # cohort, customers, months 0..2
    assert {"ablation", "clv-vs-challenger", "ingest"} <= set(tables)
    assert tables["clv-selection"]["rows"] == 3  # bgnbd, pareto_nbd, mbgnbd (skipped)
    assert tables["churn-champion"]["rows"] == 3  # lightgbm, lightgbm_prior, log_rfm
    assert tables["funnel"] == {"rows": 3, "columns": 7}  # product_view, add_to_cart, purchase
    assert tables["funnel-breakdown"]["rows"] == 3  # app, web, champions
    assert tables["migration"] == {"rows": 3, "columns": 5}  # champions, lost, new x champions, gone, lost + total
    assert tables["distribution"]["rows"] == 3 and tables["plan-actions"]["rows"] == 1


def test_heat_map_coloured(loaded: dict[str, Any]) -> None:
    """Cohort cells carry a background colour."""
    colour = loaded["probe"]["heatColour"]
    assert colour and colour not in ("rgba(0, 0, 0, 0)", "transparent")


def test_fits_the_window(loaded: dict[str, Any]) -> None:
    """No horizontal page scroll at 1280 px: wide tables scroll inside their panel."""
    assert loaded["probe"]["pageWidth"] <= loaded["probe"]["viewWidth"]


def test_no_network_request(loaded: dict[str, Any]) -> None:
    """Every request the page made was the file itself or a data: URI."""
    assert loaded["requests"], "the browser reported no request at all (is Network events collection broken?)"
    remote = [u for u in loaded["requests"] if not u.startswith(LOCAL_SCHEMES)]
    assert remote == []
    assert loaded["requests"][0] == loaded["page"].resolve().as_uri()


def test_request_detection_works(browser: DevTools, tmp_path: Path) -> None:
    """The request check is not vacuous: a page with a remote image is caught (the name never resolves)."""
    page = tmp_path / "remote.html"
    page.write_text('<!DOCTYPE html><title>t</title><img src="http://report-test.invalid/x.png" alt="remote">',
                    encoding="utf-8")
    seen = open_page(browser, page)
    assert "http://report-test.invalid/x.png" in seen["requests"]
    assert seen["probe"]["images"][0]["width"] == 0
