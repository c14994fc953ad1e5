"""What the browser tests share: Debian's chromium, an app served on a loopback port from its
own thread and event loop (Playwright's sync API drives the page from the test), and where
screenshots go for a person to look at."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    expect,
    sync_playwright,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots are kept here after the run (each test also has them in its tmp dir).
SHOTS = Path(os.environ.get("SMSBOT_SHOTS_DIR", "/tmp/smsbot-shots"))

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} is missing (scripts/test.sh installs it)"
)


@contextmanager
def served(
    make_app: Callable[[int], web.Application],
    before: Callable[[], Awaitable[None]] | None = None,
) -> Iterator[str]:
    """``make_app(port)`` served on a free loopback port; yields its base URL. ``before`` runs
    on the app's loop first (e.g. to add agents to its store)."""
    # The socket is bound here and handed to aiohttp: no window for another process to take it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runner = web.AppRunner(make_app(port))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="browser-test-app", daemon=True)
    thread.start()

    async def start() -> None:
        if before is not None:
            await before()
        await runner.setup()
        await web.SockSite(runner, sock).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        sock.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def keep_shot(path: Path) -> None:
    """Copies a screenshot to SHOTS, where it outlives the test's tmp dir."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot of a console page, named by the window's width, kept in SHOTS."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = tmp_path / f"console-{name}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    keep_shot(path)


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("window.innerWidth"), width


@contextmanager
def watched_page(
    browser: Browser,
    base_url: str,
    size: tuple[int, int],
    refused_on_purpose: Callable[[int, str], bool] = lambda status, url: False,
) -> Iterator[Page]:
    """A fresh page at ``size`` that fails the test on a script error, a console error, a
    request outside ``base_url`` or a 4xx/5xx that ``refused_on_purpose(status, url)`` does not
    expect."""
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale="zh-CN")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(m: ConsoleMessage) -> None:
        # Refused requests are logged by the browser too; they are checked via responses.
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            problems.append(f"console: {m.text}")

    def on_response(r: Response) -> None:
        if r.status >= 400 and not refused_on_purpose(r.status, r.url):
            problems.append(f"{r.status} for {r.url}")

    def on_request(r: Request) -> None:
        if not r.url.startswith(base_url):
            problems.append(f"outside request: {r.url}")

    pg.on("console", on_console)
    pg.on("response", on_response)
    pg.on("request", on_request)
    expect.set_options(timeout=15_000)
    try:
        yield pg
        assert problems == []
    finally:
        context.close()
