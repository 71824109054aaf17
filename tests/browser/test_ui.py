"""The web UI at /ui, driven in headless Chromium (Debian's `chromium`) by Playwright, against real bunq
processes: the overview loads cleanly, a pushed job shows up without a reload, the page's buttons change the
server (pause, DLQ retry), and with AUTH_TOKENS nothing but the token prompt shows before a token is given.

Each test saves a screenshot of its page under .artifacts/ui/ (gitignored) to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright import sync_api

from tests.support.processes import BunqServer

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "ui"
TIMEOUT_MS = 10_000


def chromium_missing() -> str | None:
    if os.path.exists(CHROMIUM):
        return None
    sudo = "" if os.geteuid() == 0 else "sudo "
    return (
        f"{CHROMIUM} is missing: the browser tests need Debian's chromium package; install it with "
        f"`{sudo}apt-get install -y --no-install-recommends chromium` (.ci/run does this on CI)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    missing = chromium_missing()
    if missing:
        pytest.fail(missing, pytrace=False)
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    bunq = BunqServer(tmp_path_factory.mktemp("ui") / "data", shards=2, fronts=1)
    bunq.start()
    yield bunq
    bunq.stop()


@pytest.fixture(scope="module")
def http(server: BunqServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


class Page:
    """A browser page that records console errors and failed requests, so a test can assert none."""

    def __init__(self, browser: sync_api.Browser) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"{r.url}: {r.failure}"))

    def open(self, base: str, fragment: str = "") -> sync_api.Page:
        self.page.goto(f"{base}/ui/{fragment}")
        return self.page

    def live(self) -> None:
        """Wait until the page is subscribed to the event stream."""
        self.page.wait_for_selector("body[data-live=on]")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(150)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


@pytest.fixture
def tab(browser: sync_api.Browser) -> Iterator[Page]:
    page = Page(browser)
    yield page
    page.context.close()


def push(http: httpx.Client, queue: str, **body: object) -> str:
    reply = http.post(f"/queues/{queue}/jobs", json={"data": {"n": 1}, **body})
    reply.raise_for_status()
    return str(reply.json()["id"])


def pull(http: httpx.Client, queue: str, count: int) -> list[dict[str, object]]:
    reply = http.post(f"/queues/{queue}/jobs/pull-batch", json={"count": count, "timeout": 0})
    reply.raise_for_status()
    return list(reply.json()["jobs"])


def to_dlq(http: httpx.Client, queue: str, error: str) -> str:
    job_id = push(http, queue, maxAttempts=1, data={"order": 42})
    pulled = http.get(f"/queues/{queue}/jobs").json()["job"]
    assert pulled["id"] == job_id
    http.post(f"/jobs/{job_id}/fail", json={"error": error}).raise_for_status()
    assert http.get(f"/jobs/{job_id}/state").json()["state"] == "failed"
    return job_id


def test_the_page_and_its_assets_are_served_with_types_and_no_cache(http: httpx.Client) -> None:
    redirect = http.get("/ui")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/ui/"
    for path, kind in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/vendor/uPlot.iife.min.js", "javascript"),
    ]:
        reply = http.get(path)
        assert reply.status_code == 200, path
        assert kind in reply.headers["content-type"], path
        assert reply.headers["cache-control"] == "no-cache"
        again = http.get(path, headers={"if-none-match": reply.headers["etag"]})
        assert again.status_code == 304, path
    assert http.get("/ui/nothing-here.js").status_code == 404
    assert http.get("/dashboard").status_code == 404  # the reference's JSON paths stay free


def test_the_overview_loads_without_a_console_error(server: BunqServer, http: httpx.Client, tab: Page) -> None:
    for n in range(5):
        push(http, "emails", data={"n": n})
    push(http, "reports", delay=60_000)
    to_dlq(http, "payments", "card declined")
    http.post("/workers", json={"name": "mailer-1", "queues": ["emails"]}).raise_for_status()
    page = tab.open(server.url)
    tab.live()
    page.wait_for_selector("#totals .stat")
    totals = page.inner_text("#totals")
    assert "WAITING" in totals.upper() and "WORKERS ONLINE" in totals.upper()
    assert page.inner_text("#health-status") == "healthy"
    page.wait_for_selector("#chart .uplot")
    for _ in range(40):  # traffic across two stats:snapshot events (5 s apart), so the chart draws rates
        if int(page.get_attribute("#chart", "data-points") or 0) >= 2:
            break
        push(http, "emails", data={"tick": True})
        http.post("/jobs/ack-batch", json={"ids": [j["id"] for j in pull(http, "emails", 3)]})
        page.wait_for_timeout(300)
    assert int(page.get_attribute("#chart", "data-points") or 0) >= 2
    tab.shot("overview")
    page.goto(f"{server.url}/ui/#/queues")
    page.wait_for_selector("tr[data-queue=emails]")
    tab.shot("queues")
    for fragment, name in [("#/crons", "crons"), ("#/webhooks", "webhooks"), ("#/workers", "workers")]:
        page.goto(f"{server.url}/ui/{fragment}")
        page.wait_for_selector("main table")
        tab.shot(name)
    assert tab.errors == []


def test_a_job_pushed_over_http_appears_without_a_reload(
    server: BunqServer, http: httpx.Client, tab: Page, queue: str
) -> None:
    push(http, queue, data={"first": True})
    page = tab.open(server.url, f"#/queues/{queue}?state=waiting")
    tab.live()
    page.wait_for_selector("tr[data-job]")
    job_id = push(http, queue, data={"to": "ops@example.com", "subject": "Welcome"}, priority=5)
    row = page.wait_for_selector(f'tr[data-job="{job_id}"]')
    assert row is not None
    tab_count = page.locator('.tab[aria-selected="true"] .count')
    sync_api.expect(tab_count).to_have_text("2")
    row.query_selector("a").click()  # type: ignore[union-attr]
    page.wait_for_selector("#job-state")
    assert page.inner_text("#job-state") == "waiting"
    assert "ops@example.com" in page.inner_text("#inspector")
    tab.shot("queue")
    assert tab.errors == []


def test_pausing_a_queue_from_the_page_pauses_it_on_the_server(
    server: BunqServer, http: httpx.Client, tab: Page, queue: str
) -> None:
    push(http, queue)
    page = tab.open(server.url, "#/queues")
    tab.live()
    row = page.locator(f'tr[data-queue="{queue}"]')
    row.locator("[data-action=pause]").click()
    sync_api.expect(row.locator(".badge")).to_have_text("paused")
    assert http.get(f"/queues/{queue}/paused").json()["paused"] is True
    row.locator("[data-action=resume]").click()
    sync_api.expect(row.locator("[data-action=pause]")).to_be_visible()
    assert http.get(f"/queues/{queue}/paused").json()["paused"] is False


def test_the_queues_page_shows_limits_set_over_http(
    server: BunqServer, http: httpx.Client, tab: Page, queue: str
) -> None:
    push(http, queue)
    http.put(f"/queues/{queue}/rate-limit", json={"limit": 120})
    http.put(f"/queues/{queue}/concurrency", json={"limit": 3})
    page = tab.open(server.url, "#/queues")
    cells = page.locator(f'tr[data-queue="{queue}"] td.num')
    sync_api.expect(cells.nth(6)).to_have_text("120")  # waiting, active, delayed, completed, failed, DLQ, rate
    sync_api.expect(cells.nth(7)).to_have_text("3")


def test_a_destructive_action_asks_first(server: BunqServer, http: httpx.Client, tab: Page, queue: str) -> None:
    push(http, queue)
    page = tab.open(server.url, "#/queues")
    row = page.locator(f'tr[data-queue="{queue}"]')
    row.locator("[data-action=obliterate]").click()
    dialog = page.locator("dialog#confirm")
    sync_api.expect(dialog).to_be_visible()
    assert queue in dialog.inner_text()
    dialog.locator("button[value=cancel]").click()
    assert http.get(f"/queues/{queue}/count").json()["count"] == 1
    row.locator("[data-action=obliterate]").click()
    dialog.locator("button[value=ok]").click()
    sync_api.expect(row).to_have_count(0)
    assert http.get(f"/queues/{queue}/count").json()["count"] == 0


def test_a_dlq_entry_retried_from_the_page_is_waiting_again(
    server: BunqServer, http: httpx.Client, tab: Page, queue: str
) -> None:
    job_id = to_dlq(http, queue, "SMTP connection refused")
    page = tab.open(server.url, f"#/dlq?queue={queue}")
    tab.live()
    row = page.locator(f'tr[data-job="{job_id}"]')
    sync_api.expect(row).to_contain_text("SMTP connection refused")
    sync_api.expect(row).to_contain_text("max_attempts_exceeded")
    page.wait_for_selector("#cfg-maxEntries")
    tab.shot("dlq")
    row.locator("[data-action=retry]").click()
    sync_api.expect(row).to_have_count(0)
    assert http.get(f"/jobs/{job_id}/state").json()["state"] == "waiting"
    assert tab.errors == []


def test_with_auth_tokens_nothing_shows_before_a_token(
    browser: sync_api.Browser, tmp_path: Path, tab: Page, queue: str
) -> None:
    bunq = BunqServer(tmp_path / "data", shards=1, fronts=1, AUTH_TOKENS="secret").start()
    try:
        with httpx.Client(base_url=bunq.url, headers={"Authorization": "Bearer secret"}) as http:
            push(http, queue)
        assert httpx.get(f"{bunq.url}/ui/app.js").status_code == 200  # the assets hold no data
        page = tab.open(bunq.url)
        page.wait_for_selector("#token")
        assert page.locator("#top").is_hidden()
        assert queue not in page.content()
        assert re.sub(r"\s+", " ", page.inner_text("main")).startswith("bunq This server requires an access token.")
        tab.shot("login")
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        sync_api.expect(page.locator("#login-error")).to_have_text("That token was refused.")
        assert page.locator("#top").is_hidden()
        page.fill("#token", "secret")
        page.click("button[type=submit]")
        tab.live()
        page.wait_for_selector("#totals .stat")
        assert page.evaluate("sessionStorage.getItem('bunq.token')") == "secret"
        assert "secret" not in page.url
        page.goto(f"{bunq.url}/ui/#/queues")
        page.wait_for_selector(f'tr[data-queue="{queue}"]')
        tab.errors = [e for e in tab.errors if "401" not in e]  # the refused token's answer
        assert tab.errors == []
    finally:
        bunq.stop()


def test_chromium_is_where_the_tests_expect_it() -> None:
    """CI installs it (.ci/run); on a developer machine the message says how."""
    missing = chromium_missing()
    assert missing is None, missing
