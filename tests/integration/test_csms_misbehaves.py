"""A CSMS that misbehaves: CALLERRORs to transaction messages, late answers, silence, an
outage in the middle of a call, and a StartTransaction.conf that says the idTag is invalid.

The rules (outbox.py, OCPP 1.6 §4.10): a transaction message the CSMS refuses or leaves
unanswered is tried ``TransactionMessageAttempts`` times, ``attempt x
TransactionMessageRetryInterval`` apart, always with the same unique id; then it is dropped, so
it never blocks the messages behind it. An Authorize left unanswered for
``[authorization] authorize_timeout`` is decided by the offline rules.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from ocpp.v16 import call

from evsim.site import SimSite, SiteOptions
from tests.integration.conftest import Bench, RunningAgent

from .conformance.helpers import (
    INVALID,
    VALID,
    VALID_2,
    booted,
    change,
    charging,
    energy_stopped,
    first_sends,
    offline,
    online,
    present_again,
    sample_times,
    status,
    unique_id,
    until,
)

CALL_TIMEOUT = 2  # s the agent waits for an answer ([csms] call_timeout)


@pytest.fixture
def site_options() -> SiteOptions:
    return SiteOptions(sample_interval=1, extra_csms=f"call_timeout = {CALL_TIMEOUT}",
                       extra_authorization="authorize_timeout = 1")


async def retries(site: SimSite, attempts: int) -> None:
    assert await change(site, "TransactionMessageAttempts", str(attempts)) == "Accepted"
    assert await change(site, "TransactionMessageRetryInterval", "1") == "Accepted"


async def charging_again(site: SimSite, bench: Bench) -> None:
    """Charging, when the CSMS's books still hold an unfinished transaction."""
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("ev_state", 1, "C")
    await present_again(bench, VALID)
    await status(site, "Charging")


async def still_serving(site: SimSite) -> None:
    """The agent is alive and answers the CSMS."""
    result = await site.csms.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert result.configuration_key


# --- CALLERROR to transaction messages ----------------------------------------------------


async def test_start_transaction_refused_twice_is_retried_with_the_same_unique_id(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await retries(site, 3)
    site.csms.error_answers["StartTransaction"] = 2
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench("present_card", VALID)
    await site.csms.wait_for(lambda: site.csms.transactions)
    starts = site.csms.calls("StartTransaction")
    assert len(starts) == 3 and len({unique_id(f) for f in starts}) == 1
    (tx,) = site.csms.transactions.values()
    await site.csms.wait_for_action("MeterValues")
    assert {f.payload["transactionId"] for f in site.csms.calls("MeterValues")} \
        == {tx.transaction_id}, "nothing of the transaction went out before its Start"
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: tx.stop_count)
    assert tx.reason == "EVDisconnected"


async def test_meter_values_refused_to_the_last_attempt_are_dropped_and_block_nothing(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await retries(site, 2)
    site.csms.error_answers["MeterValues"] = 2  # both attempts of the first MeterValues
    transaction_id = await charging(site, bench)
    await site.csms.wait_for(lambda: len(first_sends(site, "MeterValues")) >= 3)
    first = first_sends(site, "MeterValues")[0]
    sends_of_first = [f for f in site.csms.calls("MeterValues")
                      if unique_id(f) == unique_id(first)]
    assert len(sends_of_first) == 2, "tried TransactionMessageAttempts times, then dropped"
    tx = site.csms.transactions[transaction_id]
    await site.csms.wait_for(lambda: len(tx.meter_values) >= 2)
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: tx.stop_count)
    assert sample_times(first)[0] not in {
        datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00")) for v in tx.meter_values
    }


async def test_a_stop_transaction_refused_to_the_last_attempt_does_not_block_the_next_session(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await retries(site, 2)
    assert await change(site, "MeterValueSampleInterval", "0") == "Accepted"
    first_id = await charging(site, bench)
    site.csms.error_answers["StopTransaction"] = 2
    await bench("unplug", 1)
    await site.csms.wait_for_action("StopTransaction", count=2)
    await until(lambda: agent.runtime.outbox.backlog == 0, what="the stop given up")
    assert site.csms.transactions[first_id].stop_count == 0  # refused both times

    await status(site, "Available")
    await charging_again(site, bench)
    second = site.csms.transactions[max(site.csms.transactions)]
    assert second.transaction_id != first_id
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: second.stop_count)
    assert len(site.csms.calls("StopTransaction")) == 3


async def test_a_start_transaction_never_accepted_drops_its_transaction_and_not_the_next(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await retries(site, 2)
    site.csms.error_answers["StartTransaction"] = 2
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench("present_card", VALID)
    await site.csms.wait_for_action("StartTransaction", count=2)
    await bench("unplug", 1)
    await until(lambda: agent.runtime.outbox.backlog == 0, within=10,
                what="the transaction's messages given up")
    assert site.csms.calls("StopTransaction") == [], "a stop cannot name an unknown transaction"
    assert site.csms.transactions == {}

    await status(site, "Available")
    await charging_again(site, bench)
    (tx,) = site.csms.transactions.values()
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: tx.stop_count)


# --- answers late or never ----------------------------------------------------------------


async def test_a_start_transaction_answered_after_the_timeout_makes_one_session(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    await retries(site, 3)
    assert await change(site, "MeterValueSampleInterval", "0") == "Accepted"
    site.csms.answer_delays["StartTransaction"] = [CALL_TIMEOUT + 0.5]
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await bench("present_card", VALID)
    await site.csms.wait_for_action("StartTransaction", count=2, within=CALL_TIMEOUT + 5)
    await status(site, "Charging")
    starts = site.csms.calls("StartTransaction")
    assert len({unique_id(f) for f in starts}) == 1, "a resend, recognisable as one"
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: any(t.stop_count for t in site.csms.transactions.values()))
    await status(site, "Available")
    (stop,) = site.csms.calls("StopTransaction")
    answered = [f.payload["transactionId"] for f in site.csms.frames
                if f.direction == "out" and f.message_type == 3 and "transactionId" in f.payload]
    assert stop.payload["transactionId"] == answered[0], "the first answer counts, once"
    assert agent.runtime.outbox.backlog == 0
    await still_serving(site)


async def test_an_authorize_answered_after_its_timeout_is_ignored(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    site.csms.answer_delays["Authorize"] = [1.5]  # after authorize_timeout, before call_timeout
    await bench("plug", 1)
    await status(site, "Preparing")
    await bench("present_card", VALID)  # unknown locally: offline rules refuse it
    await site.csms.wait_for(lambda: any(f.direction == "out" and f.message_type == 3
                                         and "idTagInfo" in f.payload
                                         for f in site.csms.frames))  # the late answer
    await present_again(bench, VALID_2)  # the charger still works: a new card is asked for
    await site.csms.wait_for_action("Authorize", count=2)
    await site.csms.wait_for_action("StartTransaction")
    (start,) = site.csms.calls("StartTransaction")
    assert start.payload["idTag"] == VALID_2, "the late Accepted started nothing"


async def test_an_authorize_never_answered_falls_back_to_the_offline_rules(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    entry = {"idTag": VALID, "idTagInfo": {"status": "Accepted"}}
    result = await site.csms.call(call.SendLocalList(
        list_version=1, update_type="Full", local_authorization_list=[entry]))
    assert result.status == "Accepted"
    site.csms.silent.add("Authorize")
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await status(site, "Preparing")

    await bench("present_card", VALID_2)  # unknown, and AllowOfflineTxForUnknownId is false
    await site.csms.wait_for_action("Authorize")
    await present_again(bench, VALID)  # listed: LocalAuthorizeOffline lets it start
    await site.csms.wait_for_action("StartTransaction", within=CALL_TIMEOUT + 5)
    (start,) = site.csms.calls("StartTransaction")
    assert start.payload["idTag"] == VALID
    await status(site, "Charging")
    assert [f.payload["idTag"] for f in site.csms.calls("Authorize")] == [VALID_2, VALID]


# --- an outage in the middle of a call ----------------------------------------------------


async def test_meter_values_across_an_outage_arrive_once_in_order_and_evenly_spaced(
    site: SimSite, bench: Bench, agent: RunningAgent
) -> None:
    await booted(site)
    transaction_id = await charging(site, bench)
    await site.csms.wait_for_action("MeterValues")
    site.csms.silent.add("MeterValues")  # a MeterValues is in flight when the link drops
    count = len(site.csms.calls("MeterValues"))
    await site.csms.wait_for_action("MeterValues", count=count + 1)
    await offline(site, agent)
    site.csms.silent.clear()
    went_down = datetime.now(UTC)
    backlog = agent.runtime.outbox.backlog
    await until(lambda: agent.runtime.outbox.backlog >= backlog + 3, what="samples offline")
    came_back = datetime.now(UTC)
    await online(site, agent)
    tx = site.csms.transactions[transaction_id]
    await until(lambda: agent.runtime.outbox.backlog <= 1, what="the backlog delivered")
    await bench("unplug", 1)
    await site.csms.wait_for(lambda: tx.stop_count)

    sends = first_sends(site, "MeterValues")
    times = [t for f in sends for t in sample_times(f)]
    assert times == sorted(times) and len(set(times)) == len(times)
    received = sorted(datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00"))
                      for v in tx.meter_values)
    assert received == times, "every sample answered once, the one cut off included"
    assert sum(went_down < t < came_back for t in times) >= 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(0.5 <= gap <= 2.5 for gap in gaps), f"spaced by the 1 s interval: {gaps}"
    (stop,) = site.csms.calls("StopTransaction")
    assert all(f.at < stop.at for f in sends)


# --- StartTransaction.conf says Invalid ----------------------------------------------------


@pytest.mark.parametrize(("stop_on_invalid", "final"), [(True, "Finishing"),
                                                         (False, "SuspendedEVSE")])
async def test_stop_transaction_on_invalid_id(
    site: SimSite, bench: Bench, agent: RunningAgent, stop_on_invalid: bool, final: str
) -> None:
    await booted(site)
    assert await change(site, "AuthorizeRemoteTxRequests", "false") == "Accepted"
    assert await change(site, "StopTransactionOnInvalidId",
                        str(stop_on_invalid).lower()) == "Accepted"
    site.csms.authorizations[INVALID] = {"status": "Invalid"}
    await bench("plug", 1)
    await bench("ev_state", 1, "C")
    await status(site, "Preparing")
    result = await site.csms.call(call.RemoteStartTransaction(id_tag=INVALID, connector_id=1))
    assert result.status == "Accepted"
    await site.csms.wait_for_action("StartTransaction")
    await status(site, final)
    await energy_stopped(bench)
    (tx,) = site.csms.transactions.values()
    if stop_on_invalid:
        await site.csms.wait_for(lambda: tx.stop_count)
        assert tx.reason == "DeAuthorized"
    else:
        assert tx.stop_count == 0, "the transaction is kept, energy stops"
