"""Opens the HTML readiness report in headless Chromium and checks what a reader sees.

Usage: python html-check.py REPORT_DIR [SCREENSHOT.png]

REPORT_DIR holds readiness.html and readiness.json (as `chaos report` writes them). The
page is loaded from disk in a real browser, driven over the DevTools protocol, and
judged against the JSON rendering of the same report:
- the page parses and lays out: the title and the verdict heading state the verdict;
- the failing-scenario section names every failing scenario of the JSON (or says
  none), and with a trend in the JSON the trend section names each newly failing,
  fixed and still failing scenario;
- every scenario of the JSON is in the page's visible text, every blocking entry in
  the page (long lists are folded);
- every chart is drawn with a size, and no chart label spills outside its chart;
- nothing is wider than a 1280-pixel window (no horizontal scrolling);
- the page logged no error to the console and loaded nothing from the network.
A screenshot of the whole page is saved for people. Exit status 1 names each problem.
"""

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]

# Runs in the page; returns what the checks judge.
PAGE_FACTS = r"""
(() => {
  const charts = [...document.querySelectorAll('svg')].map((svg, i) => {
    const box = svg.getBoundingClientRect();
    const spilled = [...svg.querySelectorAll('text')].filter(t => {
      const b = t.getBBox();
      const w = svg.viewBox.baseVal && svg.viewBox.baseVal.width || box.width;
      return b.x < -0.5 || b.x + b.width > w + 0.5;
    }).map(t => t.textContent);
    return {index: i, width: box.width, height: box.height, spilled};
  });
  return {
    title: document.title,
    verdict: (document.querySelector('#verdict') || {}).textContent || null,
    sections: Object.fromEntries(['failing', 'trend'].map(id => {
      // A section: its heading and everything up to the next h2.
      const h = document.getElementById(id);
      if (!h) return [id, null];
      let text = '', n = h.nextElementSibling;
      while (n && n.tagName !== 'H2') { text += n.textContent + '\n'; n = n.nextElementSibling; }
      return [id, text];
    })),
    text: document.body.innerText,
    allText: document.body.textContent,
    charts,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    resources: performance.getEntriesByType('resource').map(r => r.name),
  };
})()
"""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("html-check: no chromium on PATH (ci/html-check.sh installs Debian's)")


class Page:
    """One page target, driven over its DevTools WebSocket."""

    def __init__(self, ws_url):
        self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=30)
        self.next_id = 0
        self.console_errors = []

    def call(self, method, params=None):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                self.console_errors.append(" ".join(str(a.get("value")) for a in msg["params"]["args"]))
            if msg.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(msg["params"]["exceptionDetails"].get("text", "exception"))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]


def page_target(port):
    for _ in range(100):
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    sys.exit("html-check: chromium opened no page")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    report = Path(sys.argv[1]).resolve()
    html, data = report / "readiness.html", report / "readiness.json"
    for f in (html, data):
        if not f.is_file():
            sys.exit(f"html-check: {f} is missing (run `chaos report ... --out {report}`)")
    readiness = json.loads(data.read_text())
    screenshot = Path(sys.argv[2]) if len(sys.argv) == 3 else report / "readiness.png"

    profile = tempfile.mkdtemp(prefix="html-check-")
    browser = subprocess.Popen(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        else:
            sys.exit("html-check: chromium did not open its DevTools port")
        port = port_file.read_text().split()[0]
        page = Page(page_target(port))
        page.call("Runtime.enable")
        page.call("Page.enable")
        page.call("Page.navigate", {"url": html.as_uri()})
        facts = None
        for _ in range(100):
            state = page.call("Runtime.evaluate", {"expression": "document.readyState", "returnByValue": True})
            if state["result"]["value"] == "complete":
                facts = page.call("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True})
                break
            time.sleep(0.1)
        if facts is None:
            sys.exit("html-check: the page never finished loading")
        facts = facts["result"]["value"]
        metrics = page.call("Page.getLayoutMetrics")
        height = int(metrics["cssContentSize"]["height"])
        shot = page.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": 1280, "height": min(height, 16000), "scale": 1}},
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        problems = judge(facts, readiness, page.console_errors)
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)

    for p in problems:
        print(f"html-check: {p}")
    if problems:
        sys.exit(1)
    scenarios = len(readiness["scenarios"])
    failing = sum(1 for s in readiness["scenarios"] if s["outcome"] == "failed")
    trend = "with its trend" if readiness.get("trend") else "no trend"
    print(
        f"html-check: ok: {report.name}: {scenarios} scenarios ({failing} failing, {trend}) "
        f"and {len(facts['charts'])} charts shown, page {height} px tall; screenshot {screenshot}"
    )


def judge(facts, readiness, console_errors):
    problems = []
    word = "not ready" if not readiness["verdict"]["ready"] else "ready"
    if word not in facts["title"].lower():
        problems.append(f"the title {facts['title']!r} does not say {word!r}")
    if not facts["verdict"] or word not in facts["verdict"].lower():
        problems.append(f"the verdict heading {facts['verdict']!r} does not say {word!r}")
    text = facts["text"]
    failing = facts["sections"]["failing"]
    if failing is None:
        problems.append("no failing-scenario section (#failing)")
    else:
        ids = [s["id"] for s in readiness["scenarios"] if s["outcome"] == "failed"]
        lost = [i for i in ids if i not in failing]
        if lost:
            problems.append(f"failing scenarios missing from #failing: {lost[:5]}")
        if not ids and "none" not in failing.lower():
            problems.append("#failing neither lists a scenario nor says none")
    trend = readiness.get("trend")
    if trend:
        section = facts["sections"]["trend"]
        if section is None:
            problems.append("the JSON has a trend but the page has no #trend section")
        else:
            for kind in ("newly_failing", "fixed", "still_failing"):
                lost = [c["id"] for c in trend[kind] if c["id"] not in section]
                if lost:
                    problems.append(f"#trend lacks {kind.replace('_', ' ')}: {lost[:5]}")
    missing = [s["id"] for s in readiness["scenarios"] if s["id"] not in text]
    if missing:
        problems.append(f"{len(missing)} scenario(s) of the JSON are not in the page: {missing[:5]}")
    blockers = [b["id"] for b in readiness["verdict"]["blocking"] if b.get("id")]
    # Long blocker lists are folded in <details>: present, one click away.
    absent = [b for b in blockers if b not in facts["allText"]]
    if absent:
        problems.append(f"{len(absent)} blocking entries are not in the page: {absent[:5]}")
    if not facts["charts"]:
        problems.append("no chart is drawn")
    for c in facts["charts"]:
        if c["width"] < 1 or c["height"] < 1:
            problems.append(f"chart {c['index']} is drawn {c['width']}x{c['height']}")
        if c["spilled"]:
            problems.append(f"chart {c['index']}: labels outside the chart: {c['spilled'][:3]}")
    if facts["scrollWidth"] > facts["innerWidth"]:
        problems.append(
            f"the page is {facts['scrollWidth']} px wide in a {facts['innerWidth']} px window"
        )
    remote = [r for r in facts["resources"] if not r.startswith(("file:", "data:"))]
    if remote:
        problems.append(f"the page loads from the network: {remote[:3]}")
    problems.extend(f"console error: {e}" for e in console_errors)
    return problems


if __name__ == "__main__":
    main()
