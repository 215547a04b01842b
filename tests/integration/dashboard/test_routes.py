"""The dashboard's routes against the whole agent, without a browser: the page and its files,
the login cookie of the event stream, status, masked configuration, the message-log search,
the CSV export and the bench relay (simulation only)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import aiohttp
import pytest

from agent.api import server
from evsim.site import SimSite

from ..conftest import Bench
from .conftest import CONTROL, EVSE, HOOK_SECRET, READ, DashboardAgent


async def call(agent: DashboardAgent, method: str, path: str, token: str | None = READ,
               body: Any = None, **options: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(
            method, agent.base + path, headers=headers,
            data=json.dumps(body) if body is not None else None, **options) as response:
        text = await response.text()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return response.status, parsed, response


async def online(site: SimSite) -> None:
    await site.csms.wait_for(lambda: site.csms.last_status(1) == "Available")


async def test_the_page_and_its_files_are_served_without_a_token_with_a_strict_policy(
        agent: DashboardAgent) -> None:
    status, page, response = await call(agent, "GET", "/dashboard/", None)
    assert status == 200 and "<title>evse-agent</title>" in page
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, _, response = await call(agent, "GET", f"/dashboard/{name}", None)
        assert status == 200 and response.content_type == kind
    assert (await call(agent, "GET", "/dashboard/../auth.py", None))[0] == 404
    assert (await call(agent, "GET", "/dashboard/secret.txt", None))[0] == 404
    status, _, response = await call(agent, "GET", "/", None, allow_redirects=False)
    assert status == 302 and response.headers["Location"] == "/dashboard/"


async def test_every_data_route_keeps_the_token_rules(agent: DashboardAgent) -> None:
    for path in ("/api/v1/status", "/api/v1/config", "/api/v1/frames", "/api/v1/sessions.csv",
                 "/api/v1/bench/state", "/api/v1/events"):
        assert (await call(agent, "GET", path, None))[0] == 401, path
        assert (await call(agent, "GET", path, "y" * 24))[0] == 401, path
    assert (await call(agent, "POST", "/api/v1/login", "y" * 24))[0] == 401
    assert (await call(agent, "POST", "/api/v1/bench/connectors/1/plug", READ))[0] == 403
    assert (await call(agent, "POST", "/api/v1/bench/cards", READ, {"uid": "01"}))[0] == 403


async def test_the_login_cookie_opens_the_event_stream_only(agent: DashboardAgent) -> None:
    status, who, response = await call(agent, "POST", "/api/v1/login", READ)
    assert status == 200 and who == {"scope": "read", "charger": agent.config.charger.id}
    cookie = response.cookies["evse_stream"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/v1/events"
    jar = {"evse_stream": cookie.value}
    async with aiohttp.ClientSession(cookies=jar) as http:
        async with http.get(agent.base + "/api/v1/events") as stream:
            assert stream.status == 200
            assert await stream.content.readline() == b": connected\n"
        async with http.get(agent.base + "/api/v1/status") as other:
            assert other.status == 401  # the ticket opens nothing else
    async with aiohttp.ClientSession(cookies={"evse_stream": cookie.value + "x"}) as http, \
            http.get(agent.base + "/api/v1/events") as stream:
        assert stream.status == 401
    status, _, response = await call(agent, "POST", "/api/v1/logout", None)
    assert status == 200 and response.cookies["evse_stream"].value == ""


async def test_status_shows_connectors_with_evse_ids_and_the_link(
        site: SimSite, agent: DashboardAgent) -> None:
    await online(site)
    status, body, _ = await call(agent, "GET", "/api/v1/status")
    assert status == 200
    (connector,) = body["connectors"]
    assert (connector["id"], connector["evse_id"], connector["status"]) == (1, EVSE, "Available")
    assert body["link"]["up"] is True and body["bench"] is True


async def test_the_configuration_has_every_secret_masked(agent: DashboardAgent) -> None:
    status, config, _ = await call(agent, "GET", "/api/v1/config")
    text = json.dumps(config)
    assert status == 200 and config["charger"]["id"] == agent.config.charger.id
    for secret in (CONTROL, READ, HOOK_SECRET):
        assert secret not in text
    assert [t["secret"] for t in config["api"]["tokens"]] == ["***", "***"]


async def test_the_message_log_is_searched(site: SimSite, agent: DashboardAgent) -> None:
    await online(site)
    status, found, _ = await call(agent, "GET", "/api/v1/frames?q=bootnotification&limit=5")
    assert status == 200 and found["records"]
    assert {r["action"] for r in found["records"]} == {"BootNotification"}
    status, found, _ = await call(agent, "GET", "/api/v1/frames?action=StatusNotification")
    assert status == 200 and all(r["action"] == "StatusNotification" for r in found["records"])
    times = [r["time"] for r in found["records"]]
    assert times == sorted(times, reverse=True)
    assert (await call(agent, "GET", "/api/v1/frames?connector=x"))[0] == 400
    assert (await call(agent, "GET", "/api/v1/frames?limit=0"))[0] == 400


async def test_the_history_exports_as_csv_with_the_filters(
        site: SimSite, agent: DashboardAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "CSV_PAGE", 1)  # every page of the history is read
    await online(site)
    site.csms.authorizations["BADCAFE1"] = {"status": "Blocked"}
    for tag in ("BADCAFE1", "=2+3"):
        status, body, _ = await call(agent, "POST", "/api/v1/sessions/start", CONTROL,
                                     {"evse_id": EVSE, "id_tag": tag})
        assert status in (201, 424), body
    status, text, response = await call(agent, "GET", "/api/v1/sessions.csv")
    assert status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="sessions-')
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["idTag"] for r in rows} == {"BADCAFE1", "'=2+3"}
    status, text, _ = await call(agent, "GET", "/api/v1/sessions.csv?status=FAILED&id_tag=BADCAFE1")
    (row,) = csv.DictReader(io.StringIO(text))
    assert (row["idTag"], row["sessionStatus"], row["failure"]) == ("BADCAFE1", "FAILED",
                                                                    "blocked")
    assert (await call(agent, "GET", "/api/v1/sessions.csv?status=NOPE"))[0] == 400
    assert (await call(agent, "GET", "/api/v1/sessions.csv?from=yesterday"))[0] == 400
    # The webhook receiver is down: the last errors say so, without its key.
    for _ in range(200):
        if any("webhooks" in e["text"] for e in agent.problems.entries()):
            break
        await asyncio.sleep(0.1)
    status, body, _ = await call(agent, "GET", "/api/v1/status")
    shown = json.dumps(body["last_errors"])
    assert status == 200 and "webhooks: cannot reach" in shown and HOOK_SECRET not in shown


async def test_the_bench_relay_drives_the_world(site: SimSite, bench: Bench,
                                                agent: DashboardAgent) -> None:
    status, world, _ = await call(agent, "GET", "/api/v1/bench/state")
    assert status == 200 and world["connectors"][0]["ev"]["plugged"] is False
    status, plugged, _ = await call(agent, "POST", "/api/v1/bench/connectors/1/plug", CONTROL)
    assert status == 200 and plugged["ev"]["plugged"] is True
    assert (await bench.connector(1))["ev"]["plugged"] is True
    status, _, _ = await call(agent, "POST", "/api/v1/bench/connectors/1/ev", CONTROL,
                              {"state": "C"})
    assert status == 200 and (await bench.connector(1))["ev"]["state"] == "C"
    assert (await call(agent, "POST", "/api/v1/bench/connectors/1/ev", CONTROL,
                       {"state": "C", "more": 1}))[0] == 400
    assert (await call(agent, "POST", "/api/v1/bench/connectors/9/plug", CONTROL))[0] == 404
    assert (await call(agent, "POST", "/api/v1/bench/connectors/1/fault", CONTROL))[0] == 404
    status, _, _ = await call(agent, "POST", "/api/v1/bench/cards", CONTROL, {"uid": "00A1B2C3"})
    assert status == 200


async def test_without_bench_url_there_is_no_bench_route(site: SimSite) -> None:
    running = DashboardAgent(site, bench=False)
    await running.start()
    try:
        assert (await call(running, "GET", "/api/v1/bench/state"))[0] == 404
        status, body, _ = await call(running, "GET", "/api/v1/status")
        assert status == 200 and body["bench"] is False
    finally:
        await running.stop()
