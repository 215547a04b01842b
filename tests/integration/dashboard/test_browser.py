"""The dashboard in a real headless Chromium, against the whole agent: simulated world,
strict CSMS. A newcomer's tour: log in with a token, plug the EV from the bench page, start a
session, watch the live chart grow, stop it, find it in the history, export the CSV, learn
why a card was refused, search the OCPP log. Screenshots of each page are kept as artefacts
(tests/integration/dashboard/browser.py says where); with EVSE_DOCS_SCREENSHOTS=1 two of them are
written to docs/ as well.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Any

import pytest

from evsim.site import SimSite

from .browser import artifacts, browser
from .conftest import CONTROL, EVSE, DashboardAgent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]
TAG, REFUSED = "0A1B2C3D", "BADCAFE1"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WAIT = 30_000  # ms: generous, the machine may be busy


class Tour:
    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots

    async def shot(self, name: str, docs: str | None = None) -> None:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        if docs and os.environ.get("EVSE_DOCS_SCREENSHOTS") == "1":
            (ROOT / "docs" / docs).write_bytes(path.read_bytes())

    async def go(self, section: str) -> None:
        await self.page.click(f'nav a[href="#{section}"]')
        await self.page.wait_for_selector(f"#{section}:not([hidden])", timeout=WAIT)

    async def until(self, script: str, arg: Any = None) -> Any:
        try:
            return await self.page.wait_for_function(script, arg=arg, timeout=WAIT)
        except Exception:
            await self.shot("failure")  # what the page showed when the wait gave up
            raise

    async def bench_button(self, name: str) -> None:
        card = self.page.locator('[data-bench="1"]')
        await card.get_by_role("button", name=name, exact=True).click(timeout=WAIT)

    async def field(self, name: str) -> str:
        text: str = await self.page.text_content(f'#connector-1 [data-field="{name}"]')
        return text

    async def points(self) -> int:
        return int(await self.page.get_attribute("#connector-1 canvas", "data-points"))


async def test_a_newcomers_tour_of_the_dashboard(site: SimSite, agent: DashboardAgent,
                                                 tmp_path: Path) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")
    site.csms.authorizations[REFUSED] = {"status": "Blocked"}
    async with browser(tmp_path / "profile", viewport=DESKTOP) as context:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        tour = Tour(page, artifacts())
        await page.goto(agent.base + "/")
        await page.wait_for_selector("#login:not([hidden])", timeout=WAIT)
        await tour.shot("login")

        # A wrong token is refused; the control token logs in.
        await page.fill("#token", "not-a-token-at-all-0000")
        await page.click("#login-form button")
        await tour.until("() => document.querySelector('#login-error').textContent.length > 0")
        await page.fill("#token", CONTROL)
        await page.click("#login-form button")
        await page.wait_for_selector("#connector-1", timeout=WAIT)
        assert await page.evaluate("sessionStorage.length") == 1
        await tour.until("() => document.querySelector('#link-badge').textContent"
                         ".startsWith('CSMS online')")

        # A card the CSMS blocks: the start is refused with the contract's error.
        await page.fill("#start-tag", REFUSED)
        await page.click("#start-form button")
        await tour.until("() => document.querySelector('#message').textContent"
                         ".includes('424 charging_provider_error')")

        # The bench page (simulation only) plugs the EV in.
        await tour.go("bench")
        await tour.bench_button("Plug")
        await tour.until("() => document.querySelector('[data-bench=\"1\"] p')"
                         ".textContent.includes('EV plugged')")
        await tour.shot("bench")

        # Start from the connectors page; the EV asks for power; the chart grows.
        await tour.go("connectors")
        await page.select_option("#start-connector", EVSE)
        await page.fill("#start-tag", TAG)
        await page.click("#start-form button")
        await tour.until("() => /Session .*: (STARTED|WAITING_TO_START)/"
                         ".test(document.querySelector('#message').textContent)")
        session_id = await session_of(page)
        await tour.go("bench")
        await tour.bench_button("EV asks for power (C)")
        await tour.go("connectors")
        await tour.until("() => document.querySelector('#connector-1 [data-field=status]')"
                         ".textContent === 'Charging'")
        await tour.until("() => document.querySelector('#last-event').textContent"
                         ".includes('SESSION_STARTED')")  # the event stream, with the cookie
        await tour.until("() => Number(document.querySelector('#connector-1 canvas')"
                         ".dataset.points) >= 2")
        seen = await tour.points()
        await tour.until("n => Number(document.querySelector('#connector-1 canvas')"
                         ".dataset.points) >= n + 2", seen)
        assert (await tour.field("session")).startswith("STARTED")
        # The local limit: the form sets it, the pilot's offer follows, the source is shown.
        await page.fill("#connector-1 form.limit input", "10")
        await page.click("#connector-1 form.limit button")
        await tour.until("() => document.querySelector('#connector-1 [data-field=offered]')"
                         ".textContent.startsWith('10 A (limited by local:dashboard')")
        await page.set_viewport_size(PHONE)
        await tour.until("() => !document.querySelector('#connector-1 button.stop').hidden")
        await tour.shot("connectors-phone", docs="dashboard-connectors.png")
        await page.set_viewport_size(DESKTOP)
        await tour.shot("connectors")

        # Stop it from the page; it ends up COMPLETE in the history.
        await page.click("#connector-1 button.stop")
        await tour.until("() => document.querySelector('#connector-1 [data-field=status]')"
                         ".textContent !== 'Charging'")
        await tour.go("history")
        await page.fill('#history-form [name="id_tag"]', TAG)
        for _ in range(60):  # COMPLETE once the CSMS confirmed the StopTransaction
            await page.click("#history-form button[type=submit]")
            row = page.locator(f'tr[data-session="{session_id}"]')
            await row.wait_for(timeout=WAIT)
            if "COMPLETE" in await row.text_content():
                break
            await page.wait_for_timeout(500)
        assert "COMPLETE" in await row.text_content()
        await tour.shot("history", docs="dashboard-history.png")

        # The CSV export downloads the filtered history.
        async with page.expect_download(timeout=WAIT) as downloading:
            await page.click("#export-csv")
        download = await downloading.value
        assert download.suggested_filename.startswith("sessions-")
        saved = Path(await download.path())
        text = await asyncio.to_thread(saved.read_text, encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [(r["sessionId"], r["idTag"], r["sessionStatus"]) for r in rows] == [
            (session_id, TAG, "COMPLETE")]
        assert int(rows[0]["energyWh"]) >= 0 and rows[0]["stopReason"] == "Remote"

        # The cards page says why the card was refused.
        await tour.go("authorizations")
        await page.fill('#auth-form [name="id_tag"]', REFUSED)
        await page.click("#auth-form button")
        await tour.until("tag => { const rows = [...document.querySelectorAll("
                         "'#auth-table tbody tr')]; return rows.length > 0 && rows.every("
                         "r => r.cells[1] && r.cells[1].textContent === tag); }", REFUSED)
        reason = page.locator("#auth-table tbody tr td.reason").first
        assert await reason.text_content() == "the card is blocked (OCPP Blocked)"
        assert await page.text_content("#auth-table tbody tr td.bad") == "refused"
        await tour.shot("authorizations")

        # The OCPP message log, searched.
        await tour.go("frames")
        await page.fill('#frames-form [name="q"]', "StartTransaction")
        await page.click("#frames-form button")
        # The page first shows the whole log, then the search's answer replaces it.
        await tour.until("() => { const items = [...document.querySelectorAll('#frame-list li')];"
                         " return items.length > 0 && items.every("
                         "li => li.textContent.includes('StartTransaction')); }")
        lines = await page.locator("#frame-list li").all_text_contents()
        assert any("→ StartTransaction" in line for line in lines)
        assert any("← StartTransaction.conf" in line for line in lines)
        await tour.shot("ocpp-log")

        # The configuration, secrets masked; the CSMS link.
        await tour.go("config")
        await tour.until("() => document.querySelector('#config-text').textContent.length > 0")
        shown = await page.text_content("#config-text")
        assert CONTROL not in shown and '"secret": "***"' in shown
        await tour.shot("configuration")
        await tour.go("link")
        await tour.until("() => document.querySelector('#link-facts').textContent"
                         ".includes('Registration')")
        await tour.shot("link")
        assert errors == [], f"the page raised: {errors}"


async def session_of(page: Any) -> str:
    """The newest session's id, from the API with the page's token."""
    found: str = await page.evaluate(
        """async () => {
            const r = await fetch('/api/v1/sessions?limit=1', {headers: {Authorization:
                'Bearer ' + sessionStorage.getItem('evse-agent-token')}});
            return (await r.json()).sessions[0].sessionId;
        }""")
    return found
