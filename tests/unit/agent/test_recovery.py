"""Recovery at start: transactions the journal shows as open are ended with PowerLoss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.core import messages as msg
from agent.core.types import AuthorizationInfo, AuthStatus, StopReason
from agent.journal import Journal
from agent.recovery import recover
from agent.store import Store
from hal.errors import MeterError
from hal.roles import MeterReading

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Meter:
    """An energy meter (the HAL boundary) that answers ``energy_wh``, or fails when None."""

    def __init__(self, energy_wh: float | None) -> None:
        self.energy_wh = energy_wh

    async def read(self) -> MeterReading:
        if self.energy_wh is None:
            raise MeterError("no answer from meter id=1")
        return MeterReading(self.energy_wh)

    async def aclose(self) -> None:
        pass


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(Store.open(tmp_path))


def charge(journal: Journal, tx_ref: int = 1, connector_id: int = 1, samples: int = 2) -> None:
    """A transaction that was running when the agent died: started, confirmed, sampled."""
    start = msg.TransactionStarted(tx_ref, connector_id, "CAFE0001", 1000, T0)
    appended = journal.append(f"s{tx_ref}", start)
    journal.confirm(appended.seq, start, msg.TransactionStartResult(AuthorizationInfo(
        AuthStatus.ACCEPTED), 42))
    for n in range(1, samples + 1):
        value = msg.SampledValue("Energy.Active.Import.Register", 1000.0 + 10.4 * n, "Wh")
        sample = msg.MeterSample(T0 + timedelta(seconds=10 * n), (value,))
        journal.append(f"m{tx_ref}.{n}", msg.TransactionUpdated(tx_ref, connector_id, (sample,), n))


async def test_an_open_transaction_is_ended_with_power_loss_and_the_live_meter_value(
    journal: Journal,
) -> None:
    charge(journal)
    settled = await recover(journal.store, {1: Meter(1234.9)}, new_ref=lambda: "recovered")
    pending = journal.pending()
    assert [e.ref for e in pending] == ["m1.1", "m1.2", "recovered"]  # the stop comes last
    assert pending[-1].req == msg.TransactionEnded(
        tx_ref=1, connector_id=1, meter_stop_wh=1234, timestamp=T0 + timedelta(seconds=20),
        reason=StopReason.POWER_LOSS, seq_no=3, id_tag=None)
    assert [(s.tx_ref, s.meter_stop_wh, s.meter_read_live) for s in settled] == [(1, 1234, True)]
    assert journal.open_transactions() == []


async def test_a_meter_that_does_not_answer_gives_the_last_journaled_value(
    journal: Journal,
) -> None:
    charge(journal)
    (settled,) = await recover(journal.store, {1: Meter(None)})
    assert (settled.meter_stop_wh, settled.meter_read_live) == (1020, False)


async def test_without_samples_or_meter_the_stop_is_the_start(journal: Journal) -> None:
    charge(journal, samples=0)
    (settled,) = await recover(journal.store, {})
    assert (settled.meter_stop_wh, settled.timestamp) == (1000, T0)


async def test_meter_stop_is_never_below_meter_start(journal: Journal) -> None:
    charge(journal)
    (settled,) = await recover(journal.store, {1: Meter(12.0)})  # a replaced or reset meter
    assert settled.meter_stop_wh == 1000


async def test_each_open_transaction_is_read_on_its_own_connector(journal: Journal) -> None:
    charge(journal, tx_ref=1, connector_id=1)
    charge(journal, tx_ref=2, connector_id=2)
    settled = await recover(journal.store, {1: Meter(1500.0), 2: Meter(2500.0)})
    assert [(s.tx_ref, s.meter_stop_wh) for s in settled] == [(1, 1500), (2, 2500)]


async def test_stopped_transactions_are_left_alone_and_recovery_is_idempotent(
    journal: Journal,
) -> None:
    charge(journal)
    journal.append("t", msg.TransactionEnded(1, 1, 1030, T0, StopReason.LOCAL))
    assert await recover(journal.store, {1: Meter(2000.0)}) == []
    assert [e.ref for e in journal.pending()][-1] == "t"
