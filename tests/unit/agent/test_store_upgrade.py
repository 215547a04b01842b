"""A schema-4 database (before smart charging) upgrades to schema 5 in place."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.store import FILE_NAME, MIGRATIONS, Store, StorePersistence


def test_a_schema_4_store_upgrades_and_keeps_its_rows(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    raw = sqlite3.connect(tmp_path / FILE_NAME)
    raw.execute("CREATE TABLE schema_version (version INTEGER)")
    for statements in MIGRATIONS[:4]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("INSERT INTO schema_version VALUES (4)")
    raw.commit()
    raw.close()
    with Store.open(tmp_path) as store:
        store.journal_append("r1", "StartTransaction", 7, '{"a":1}')
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS) == 5
        persistence = StorePersistence(store)
        assert persistence.load_charging_profiles() == []
        schedule = ChargingSchedule("A", (SchedulePeriod(0, 10.0),), None,
                                    datetime(2026, 1, 1, tzinfo=UTC))
        kept = ChargingProfile(3, 0, 1, "TxDefaultProfile", "Absolute", schedule)
        persistence.save_charging_profiles([kept])
        assert store.journal_size == 1
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_charging_profiles() == [kept]
