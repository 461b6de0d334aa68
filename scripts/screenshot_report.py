"""Open the Snakemake HTML report in headless Chromium, show every figure and table, take screenshots.

    .venv/bin/python scripts/screenshot_report.py results/quickstart/report.html results/quickstart/report-screenshots

Chromium is Debian's (`apt-get install -y chromium`), driven over the DevTools protocol on the
loopback interface (aiohttp, already a dependency of the workflow's tools). For each result in
the report it asks the report's own app to display it, waits, checks that the browser decoded the
image (``naturalWidth > 0``) or loaded the table page, and saves a screenshot. Writes
``index.json`` (one entry per result) beside the screenshots; exits 1 if any figure did not show.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1400,1000"]


def find_chromium(explicit: str | None = None) -> str:
    for candidate in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise FileNotFoundError("no Chromium found: apt-get install -y chromium (or set $CHROMIUM)")


class DevTools:
    """The few DevTools protocol calls this needs, over one page's websocket."""

    def __init__(self, websocket):
        self.websocket = websocket
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        message_id = self.next_id
        await self.websocket.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await self.websocket.receive_json(timeout=60)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 30.0, interval_s: float = 0.2):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(interval_s)
        raise TimeoutError(f"waited {timeout_s} s for {expression}")

    async def screenshot(self, target: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png")
        target.write_bytes(base64.b64decode(result["data"]))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


async def _capture(report: Path, out: Path, port: int) -> list[dict]:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            page = await response.json(content_type=None)
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as websocket:
            tools = DevTools(websocket)
            await tools.call("Page.enable")
            await tools.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1,
                             mobile=False)
            await tools.call("Page.navigate", url=report.resolve().as_uri())
            await tools.wait_for("typeof app !== 'undefined' && typeof results !== 'undefined'")
            await asyncio.sleep(1.0)
            await tools.screenshot(out / "00_front_page.png")
            entries = await tools.evaluate(
                "Object.entries(results).map(([path, r]) => ({path, name: r.name, mime: r.mime_type,"
                " caption: r.caption.replace(/<[^>]+>/g, ' ').replace(/\\s+/g, ' ').trim()}))")
            records = [{"name": "front page", "screenshot": "00_front_page.png", "shown": True}]
            for number, entry in enumerate(sorted(entries, key=lambda e: (e["mime"] != "image/png", e["name"])), 1):
                shot = f"{number:02d}_{_safe(entry['name'])}.png"
                record = {**entry, "screenshot": None, "shown": False}
                path = json.dumps(entry["path"])
                if entry["mime"] in ("image/png", "image/svg+xml", "image/jpeg"):
                    await tools.evaluate(f"app.setView({{navbarMode: 'resultinfo', resultPath: {path}, content: 'img',"
                                         f" contentPath: results[{path}].data_uri}})")
                    size = await tools.wait_for(
                        f"(() => {{ const img = [...document.images].find(i => i.src === results[{path}].data_uri);"
                        " return img && img.complete && img.naturalWidth > 0 ?"
                        " [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width] : null; })()",
                        timeout_s=20)
                    record.update(shown=True, natural_size=size[:2], displayed_width=size[2])
                elif entry["mime"] == "text/html":
                    await tools.evaluate(f"app.setView({{navbarMode: 'resultinfo', resultPath: {path}, content: 'html',"
                                         f" contentPath: results[{path}].data_uri}})")
                    # a data: URI page is cross-origin to the report: its DOM is not readable, the iframe is
                    await tools.wait_for(f"[...document.querySelectorAll('iframe')].some(f => f.src === results[{path}].data_uri)",
                                         timeout_s=20)
                    record.update(shown=True)
                else:
                    await tools.evaluate(f"app.showResultInfo({path})")
                    record["shown"] = None  # a download (CSV, LaTeX): listed with its caption, not displayed
                await asyncio.sleep(0.6)
                await tools.screenshot(out / shot)
                record["screenshot"] = shot
                records.append(record)
            return records


def capture(report: str | Path, out: str | Path, chromium: str | None = None, timeout_s: float = 120) -> list[dict]:
    report, out = Path(report), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="rgmorph-chromium-"))
    process = subprocess.Popen([find_chromium(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        records = asyncio.run(asyncio.wait_for(_capture(report, out, port), timeout_s))
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the browser's own process group, started above
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
    (out / "index.json").write_text(json.dumps(records, indent=1) + "\n")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", help="the report HTML file (snakemake --report X.html)")
    parser.add_argument("out", help="folder for the screenshots and index.json")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH, or $CHROMIUM)")
    arguments = parser.parse_args(argv)
    records = capture(arguments.report, arguments.out, arguments.chromium)
    failed = [record["name"] for record in records if record.get("mime", "").startswith("image/") and not record["shown"]]
    for record in records:
        state = {True: "shown", False: "NOT SHOWN", None: "listed"}[record["shown"]]
        print(f"{state:9} {record['name']:32} {record.get('screenshot')}")
    if failed:
        print(f"figures that did not show: {failed}", file=sys.stderr)
        return 1
    print(f"{len(records)} screenshots in {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
