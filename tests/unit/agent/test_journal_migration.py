"""A journal written by the agent before the neutral vocabulary (schema 1) after an upgrade.

``data/journal_schema1.sql`` is the dump of a state store written by the previous release's
own Journal (commit 84def94): transaction 1 started, confirmed as CSMS transaction 501, its
first MeterValues delivered, two more MeterValues and the StopTransaction undelivered;
transaction 2 on connector 2 started and sampled, nothing delivered, still open.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.core import messages as msg
from agent.core.types import StopReason, TxTrigger
from agent.journal import Journal
from agent.recovery import recover
from agent.store import FILE_NAME, MIGRATIONS, Store
from hal.roles import MeterReading

DUMP = Path(__file__).parent / "data" / "journal_schema1.sql"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def energy(seconds: int, wh: float) -> msg.MeterSample:
    return msg.MeterSample(T0 + timedelta(seconds=seconds),
                           (msg.SampledValue("Energy.Active.Import.Register", wh, "Wh"),))


@pytest.fixture
def old_state(tmp_path: Path) -> Path:
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.executescript(DUMP.read_text())
    assert db.execute("SELECT version FROM schema_version").fetchone() == (1,)
    db.close()
    return tmp_path


def test_an_upgrade_keeps_every_undelivered_message_in_order_as_neutral_records(
    old_state: Path,
) -> None:
    with Store.open(old_state) as store:
        assert store.schema_version == len(MIGRATIONS)
        journal = Journal(store)
        pending = journal.pending()
        assert [e.ref for e in pending] == ["m1.2", "m1.3", "t1", "s2", "m2.1"]
        assert [e.req for e in pending] == [
            msg.TransactionUpdated(1, 1, (energy(20, 1021.0),), seq_no=1),
            msg.TransactionUpdated(1, 1, (energy(30, 1031.5),), seq_no=2),
            msg.TransactionEnded(1, 1, 1040, T0 + timedelta(seconds=35), StopReason.LOCAL,
                                 seq_no=3, id_tag="CAFE0001", samples=(energy(30, 1031.5),)),
            msg.TransactionStarted(2, 2, "BEEF0002", 7000, T0 + timedelta(seconds=40),
                                   seq_no=0, trigger=TxTrigger.AUTHORIZED),
            msg.TransactionUpdated(2, 2, (energy(50, 7012.0),), seq_no=1),
        ]
        assert journal.transaction_ids() == {1: 501}  # the CSMS's id is kept for the stop
        [open_tx] = journal.open_transactions()
        assert (open_tx.tx_ref, open_tx.connector_id, open_tx.last_seq_no) == (2, 2, 1)


class Meter:
    async def read(self) -> MeterReading:
        return MeterReading(7030.0)

    async def aclose(self) -> None:
        pass


async def test_recovery_after_the_upgrade_ends_the_open_transaction_next_in_its_sequence(
    old_state: Path,
) -> None:
    with Store.open(old_state) as store:
        await recover(store, {2: Meter()}, new_ref=lambda: "recovered")
        journal = Journal(store)
        last = journal.pending()[-1]
        assert last.ref == "recovered"
        assert last.req == msg.TransactionEnded(
            2, 2, 7030, T0 + timedelta(seconds=50), StopReason.POWER_LOSS, seq_no=2)


def test_a_new_store_and_a_migrated_one_have_the_same_schema(old_state: Path,
                                                            tmp_path: Path) -> None:
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    with Store.open(old_state), Store.open(fresh_dir):
        pass

    def schema(directory: Path) -> list[tuple[str, str]]:
        db = sqlite3.connect(directory / FILE_NAME)
        rows = db.execute("SELECT name, type FROM sqlite_master ORDER BY name").fetchall()
        columns = [(f"transactions.{c[1]}", c[2])
                   for c in db.execute("PRAGMA table_info(transactions)")]
        db.close()
        return sorted(rows + columns)

    assert schema(old_state) == schema(fresh_dir)
