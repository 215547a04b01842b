"""Whole sessions over OCPP 2.0.1: the real agent on simulated hardware against the strict
2.0.1 CSMS (:mod:`evsim.csms201`), which checks every frame both ways against the 2.0.1
schemas and the seqNo sequence of every transaction."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from evsim.csms201 import Csms201, Transaction201
from evsim.site import SimSite, SiteOptions

from .conftest import Bench, RunningAgent

CARD = "00A1B2C3"
OTHER_CARD = "00D4E5F6"
READER_REPEAT_WINDOW = 1.0
OUTAGE_SAMPLES = 3


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, ocpp_version="2.0.1")


async def status(csms: Csms201, value: str, evse_id: int = 1) -> None:
    await csms.wait_for(lambda: csms.last_status(evse_id) == value)


def only_transaction(csms: Csms201) -> Transaction201:
    (tx,) = csms.transactions.values()
    return tx


async def until(predicate: Any, within: float = 10.0) -> None:
    """Poll the agent's own state (the CSMS's books have ``csms.wait_for``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "the agent never got there"
        await asyncio.sleep(0.02)


async def plugged_in(site: SimSite, bench: Bench) -> Csms201:
    """The charger is up, the EV plugged in and ready (pilot C), nobody authorized yet."""
    csms = site.csms201
    await status(csms, "Available")
    await bench("plug", 1)
    await status(csms, "Occupied")
    await bench("ev_state", 1, "C")
    return csms


def assert_in_sequence(tx: Transaction201) -> None:
    assert tx.seq_nos == list(range(len(tx.events))), "seqNo counts from 0 without gaps"
    assert tx.event_types[0] == "Started" and tx.event_types[-1] == "Ended"
    assert set(tx.event_types[1:-1]) <= {"Updated"}


async def test_card_first_session_is_started_updated_and_ended_in_sequence(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = site.csms201
    await status(csms, "Available")
    start_energy = (await bench.connector())["meter"]["energy_wh"]
    await bench("present_card", CARD)
    authorize = await csms.wait_for_action("Authorize")
    assert authorize.payload == {"idToken": {"idToken": CARD, "type": "ISO14443"}}
    await status(csms, "Occupied")  # authorized, waiting for the plug (1.6 Preparing)
    await bench("plug", 1)
    await csms.wait_for_event("Started")
    await bench("ev_state", 1, "C")
    await bench.until_relay(True)
    await csms.wait_for_event("Updated", count=2)
    await bench("ev_state", 1, "B")
    await bench.until_relay(False)
    await bench("unplug", 1)
    await csms.wait_for_event("Ended")
    await status(csms, "Available")

    tx = only_transaction(csms)
    end_energy = (await bench.connector())["meter"]["energy_wh"]
    assert_in_sequence(tx)
    assert tx.trigger_reasons[0] == "CablePluggedIn", "the card came first: the plug started it"
    assert set(tx.trigger_reasons[1:-1]) == {"MeterValuePeriodic"}
    assert (tx.trigger_reasons[-1], tx.stopped_reason) == ("EVCommunicationLost",
                                                           "EVDisconnected")
    assert (tx.id_token, tx.evse_id) == (CARD, 1)
    assert tx.meter_start == int(start_energy) and tx.meter_stop == int(end_energy)
    assert tx.meter_stop is not None and tx.meter_start is not None
    assert tx.meter_stop > tx.meter_start
    started = tx.events[0]["meterValue"][0]["sampledValue"][0]
    assert started["context"] == "Transaction.Begin"
    periodic = [v for e in tx.events[1:-1] for m in e["meterValue"] for v in m["sampledValue"]]
    assert {v["context"] for v in periodic} == {"Sample.Periodic"}
    assert {"Energy.Active.Import.Register", "Power.Active.Import"} <= \
        {v["measurand"] for v in periodic}
    assert [s for s in csms.statuses if s[0] == 0] == [], "no status for the whole station"


async def test_plug_first_session_stopped_by_the_card(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = await plugged_in(site, bench)
    await bench("present_card", CARD)
    await csms.wait_for_event("Started")
    await bench.until_relay(True)
    await asyncio.sleep(READER_REPEAT_WINDOW)  # a card held on is one presentation, not two
    await bench("present_card", CARD)
    ended = await csms.wait_for_event("Ended")
    await bench.until_relay(False)
    tx = only_transaction(csms)
    assert_in_sequence(tx)
    assert tx.trigger_reasons[0] == "Authorized", "the plug came first: the card started it"
    assert (tx.trigger_reasons[-1], tx.stopped_reason) == ("StopAuthorized", "Local")
    assert ended.payload["idToken"]["idToken"] == CARD
    assert ended.payload["meterValue"][-1]["sampledValue"][0]["context"] == "Transaction.End"


async def test_request_start_and_stop_from_the_csms(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = await plugged_in(site, bench)
    answer = await csms.request_start(CARD, evse_id=1, remote_start_id=42)
    assert answer.status == "Accepted"
    started = await csms.wait_for_event("Started")
    assert started.payload["triggerReason"] == "RemoteStart"
    assert started.payload["transactionInfo"]["remoteStartId"] == 42
    assert started.payload["idToken"] == {"idToken": CARD, "type": "ISO14443"}
    await bench.until_relay(True)
    busy = await csms.request_start(OTHER_CARD, evse_id=1, remote_start_id=43)
    assert busy.status == "Rejected", "the EVSE is charging already"

    tx = only_transaction(csms)
    assert (await csms.request_stop(tx.transaction_id)).status == "Accepted"
    await csms.wait_for_event("Ended")
    await bench.until_relay(False)
    assert_in_sequence(tx)
    assert (tx.trigger_reasons[-1], tx.stopped_reason) == ("RemoteStop", "Remote")
    assert (await csms.request_stop(tx.transaction_id)).status == "Rejected", "stopped already"
    assert (await csms.request_stop("someone-else-7")).status == "Rejected", "not ours"


async def test_transaction_events_made_offline_are_delivered_in_order_after_reconnect(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    csms = await plugged_in(site, bench)
    await bench("present_card", CARD)
    await csms.wait_for_event("Updated")

    await csms.go_down()
    await until(lambda: not agent.link.up)
    sent_before = len(csms.events())
    unsent = agent.runtime.outbox.backlog
    await until(lambda: agent.runtime.outbox.backlog >= unsent + OUTAGE_SAMPLES)
    await bench("ev_state", 1, "B")
    await bench("unplug", 1)  # the session ends while the CSMS is away
    await bench.until_relay(False)
    await until(lambda: agent.runtime.outbox.backlog >= unsent + OUTAGE_SAMPLES + 1)
    assert len(csms.events()) == sent_before, "nothing reached the CSMS while it was down"

    await csms.come_back()
    await csms.wait_for_event("Ended", within=20)
    tx = only_transaction(csms)
    assert_in_sequence(tx)
    assert len(tx.events) >= 2 + OUTAGE_SAMPLES
    assert tx.stopped_reason == "EVDisconnected"
    first_sends = [json.loads(f.raw) for f in csms.events()]
    seq_nos = [m[3]["seqNo"] for m in first_sends]
    assert seq_nos == sorted(seq_nos), "the queued events went out in the order they were made"
    times = [e["timestamp"] for e in tx.events]
    assert times == sorted(times)


async def test_a_command_this_charger_does_not_offer_gets_not_supported(
    site: SimSite, agent: RunningAgent
) -> None:
    csms = site.csms201
    await status(csms, "Available")
    frames = [
        ('[2, "c1", "GetVariables", {"getVariableData": [{"component": {"name": "X"}, '
         '"variable": {"name": "Y"}}]}]', "NotSupported"),
        ('[2, "c2", "RemoteStartTransaction", {"idTag": "X"}]', "NotImplemented"),  # 1.6 name
        ('[2, "c3", "RequestStartTransaction", {"idToken": {"idToken": "X", '
         '"type": "ISO14443"}}]', "OccurrenceConstraintViolation"),  # no remoteStartId
        ("[2, ", "RpcFrameworkError"),
    ]
    for frame, _ in frames:
        await csms.send_raw(frame)
    await csms.wait_for(lambda: len(csms.call_errors()) >= len(frames))
    assert [e[2] for e in csms.call_errors()] == [code for _, code in frames]
    assert csms.calls("TransactionEvent") == [], "nothing was started"
    csms.sent_violations.clear()  # the garbage above was sent on purpose
