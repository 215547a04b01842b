"""Older databases upgrade in place and keep their rows: schema 4 (before smart charging)
and schema 5 (before the local limits were kept)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.core.types import LocalLimits
from agent.store import FILE_NAME, MIGRATIONS, Store, StorePersistence


def old_store(directory: Path, version: int) -> sqlite3.Connection:
    """A database as an agent of schema ``version`` left it; commit and close it."""
    directory.mkdir(exist_ok=True)
    raw = sqlite3.connect(directory / FILE_NAME)
    raw.execute("CREATE TABLE schema_version (version INTEGER)")
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("INSERT INTO schema_version VALUES (?)", (version,))
    return raw


def test_a_schema_4_store_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    raw = old_store(tmp_path, 4)
    raw.commit()
    raw.close()
    with Store.open(tmp_path) as store:
        store.journal_append("r1", "StartTransaction", 7, '{"a":1}')
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 5
        persistence = StorePersistence(store)
        assert persistence.load_charging_profiles() == []
        schedule = ChargingSchedule("A", (SchedulePeriod(0, 10.0),), None,
                                    datetime(2026, 1, 1, tzinfo=UTC))
        kept = ChargingProfile(3, 0, 1, "TxDefaultProfile", "Absolute", schedule)
        persistence.save_charging_profiles([kept])
        assert store.journal_size == 1
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_charging_profiles() == [kept]


def test_a_schema_5_store_upgrades_to_6_keeps_its_rows_and_adds_local_limits(
    tmp_path: Path
) -> None:
    raw = old_store(tmp_path, 5)
    raw.execute("INSERT INTO availability VALUES (1, 0)")
    raw.execute("INSERT INTO settings VALUES ('HeartbeatInterval', '120')")
    raw.execute("INSERT INTO charging_profiles VALUES (3, '{\"kept\": true}')")
    raw.commit()
    raw.close()
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS) == 6
        assert store.availability() == {1: False}
        assert store.settings() == {"HeartbeatInterval": "120"}
        assert store.charging_profiles() == ['{"kept": true}']
        persistence = StorePersistence(store)
        assert persistence.load_local_limits() == {}
        persistence.save_local_limits(1, LocalLimits((10.0, "hems")))
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_local_limits() == {1: LocalLimits((10.0, "hems"))}
