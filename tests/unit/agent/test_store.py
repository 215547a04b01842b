"""The state store: schema and migrations, what survives a reopen, and failures as StoreError."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.core.types import AuthorizationInfo, AuthStatus, LocalLimits, Reservation
from agent.store import FILE_NAME, MIGRATIONS, AuthEntry, Store, StoreError, StorePersistence

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "state")


def test_a_new_store_is_created_at_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    state = tmp_path / "does" / "not" / "exist"
    with Store.open(state) as store:
        assert store.path == state / FILE_NAME
        assert store.schema_version == len(MIGRATIONS) >= 1
    raw = sqlite3.connect(state / FILE_NAME)
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    assert {"journal", "transactions", "settings", "availability", "auth_cache", "local_list",
            "local_list_version", "schema_version"} <= tables


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.journal_append("r1", "StartTransaction", 7, '{"a":1}')
        store.journal_append("r2", "MeterValues", 7, '{"b":2}')
        store.tx_open(7, 1, "CAFE0001", 1000, T0)
        store.tx_meter(7, 1234.5, T0 + timedelta(seconds=10))
        store.tx_confirm_start(7, 42)
        store.save_setting("HeartbeatInterval", "120")
        store.set_availability(1, False)
        store.auth_cache_put(AuthEntry("CAFE0001", "Accepted", "GROUP", T0, T0))
        store.local_list_put(3, [AuthEntry("BEEF0002", "Blocked")])
    with Store.open(tmp_path) as store:
        assert [(r.ref, r.kind, r.tx_ref, r.body) for r in store.journal_rows()] == [
            ("r1", "StartTransaction", 7, '{"a":1}'), ("r2", "MeterValues", 7, '{"b":2}')]
        assert store.journal_size == 2
        (tx,) = store.open_transactions()
        assert (tx.tx_ref, tx.connector_id, tx.id_tag, tx.meter_start) == (7, 1, "CAFE0001", 1000)
        assert (tx.transaction_id, tx.start_confirmed, tx.last_meter_wh) == (42, True, 1234.5)
        assert tx.started_at == T0 and tx.last_activity_at == T0 + timedelta(seconds=10)
        assert store.transaction_ids() == {7: 42}
        assert store.settings() == {"HeartbeatInterval": "120"}
        assert store.availability() == {1: False}
        assert store.auth_cache_get("cafe0001") == AuthEntry("CAFE0001", "Accepted", "GROUP",
                                                             T0, T0)
        assert store.local_list_version() == 3
        assert store.local_list_get("beef0002") == AuthEntry("BEEF0002", "Blocked")


def test_a_stopped_transaction_is_no_longer_open(store: Store) -> None:
    store.tx_open(1, 1, "A", 10, T0)
    store.tx_close(1, "Local", 20, T0 + timedelta(minutes=1))
    assert store.open_transactions() == []
    tx = store.transaction(1)
    assert tx is not None and (tx.stopped, tx.stop_reason, tx.meter_stop) == (True, "Local", 20)


def test_max_tx_ref_never_goes_back_when_finished_transactions_are_pruned(store: Store) -> None:
    for tx_ref in (1, 2, 3):
        store.tx_open(tx_ref, 1, "A", 10, T0)
        store.tx_close(tx_ref, "Local", 20, T0)
    store.journal_append("r", "StopTransaction", 2, "{}")  # still to deliver: kept
    assert store.prune_transactions(keep=0) == 1
    assert [tx.tx_ref for tx in store.transactions()] == [2, 3]
    assert store.max_tx_ref() == 3
    store.journal_append("m", "MeterValues", 9, "{}")
    assert store.max_tx_ref() == 9


def test_a_failed_write_block_is_rolled_back_whole(store: Store) -> None:
    store.tx_open(1, 1, "A", 10, T0)
    with pytest.raises(StoreError), store.write():
        store.journal_append("r1", "StopTransaction", 1, "{}")
        store.tx_open(1, 1, "A", 10, T0)  # the same tx_ref again: refused
    assert store.journal_rows() == [] and store.journal_size == 0


def test_a_full_disk_is_a_store_error_naming_the_file_and_loses_nothing_committed(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path, max_bytes=64 * 1024)
    written = 0
    with pytest.raises(StoreError) as raised:
        for written in range(10_000):
            store.journal_append(f"r{written}", "MeterValues", 1, "x" * 500)
    assert isinstance(raised.value, OSError)
    assert str(tmp_path / FILE_NAME) in str(raised.value) and "full" in str(raised.value)
    assert store.journal_size == written == len(store.journal_rows())
    store.close()


def test_an_unwritable_state_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open") as raised:
        Store.open(blocker / "state")
    assert raised.value.path == blocker / "state" / FILE_NAME


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match=FILE_NAME):
        Store.open(tmp_path)


def test_a_second_agent_on_the_same_state_directory_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="another agent"):
        Store.open(store.path.parent)


def test_a_store_from_a_newer_agent_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    raw = sqlite3.connect(tmp_path / FILE_NAME)
    raw.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer than this agent"):
        Store.open(tmp_path)


def test_a_closed_store_raises_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.save_setting("HeartbeatInterval", "10")


def test_local_list_full_and_differential_updates(store: Store) -> None:
    store.local_list_put(1, [AuthEntry("A1", "Accepted"), AuthEntry("B2", "Blocked")])
    store.local_list_put(2, [AuthEntry("C3", "Accepted", expiry=T0)], remove=["a1"])
    assert store.local_list_version() == 2
    assert sorted(e.id_tag for e in store.local_list_entries()) == ["B2", "C3"]
    with store.write():  # a full update: one commit
        store.local_list_clear()
        store.local_list_put(5, [AuthEntry("D4", "Accepted")])
    assert [e.id_tag for e in store.local_list_entries()] == ["D4"]
    store.local_list_clear()
    assert store.local_list_version() == 0 and store.local_list_entries() == []


def test_auth_cache_put_replace_and_clear(store: Store) -> None:
    store.auth_cache_put(AuthEntry("A1", "Accepted", updated_at=T0))
    store.auth_cache_put(AuthEntry("a1", "Blocked", updated_at=T0))
    assert [e.status for e in store.auth_cache_entries()] == ["Blocked"]
    store.auth_cache_clear()
    assert store.auth_cache_get("A1") is None


def test_the_runtime_persistence_round_trips_through_the_store(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store)
        persistence.save_setting("MeterValueSampleInterval", "15")
        persistence.save_availability(2, False)
        persistence.cache_id_tag("CAFE0001", AuthorizationInfo(AuthStatus.ACCEPTED, "G", T0))
        persistence.cache_id_tag("BEEF0002", AuthorizationInfo(AuthStatus.BLOCKED))
        persistence.save_local_list(4, [("D00D0004", AuthorizationInfo(AuthStatus.ACCEPTED))])
        persistence.save_local_list(
            5, [("F00D0005", AuthorizationInfo(AuthStatus.EXPIRED, None, T0))])
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store)
        assert persistence.load_settings() == {"MeterValueSampleInterval": "15"}
        assert persistence.load_availability() == {2: False}
        assert sorted(persistence.load_cache()) == [
            ("BEEF0002", AuthorizationInfo(AuthStatus.BLOCKED)),
            ("CAFE0001", AuthorizationInfo(AuthStatus.ACCEPTED, "G", T0)),
        ]
        assert persistence.load_local_list() == (
            5, [("F00D0005", AuthorizationInfo(AuthStatus.EXPIRED, None, T0))])
        persistence.cache_id_tag(None, None)
        assert persistence.load_cache() == []


def test_the_runtime_persistence_logs_a_failed_write_instead_of_raising(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.close()
    with caplog.at_level(logging.ERROR):
        StorePersistence(store).save_setting("HeartbeatInterval", "10")
    assert "configuration HeartbeatInterval not saved" in caplog.text


def test_reservations_are_replaced_whole_and_survive_a_reopen(tmp_path: Path) -> None:
    kept = [Reservation(7, 1, "CAFE0001", T0, "FLEET"), Reservation(9, 0, "BEEF0002", T0)]
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store)
        persistence.save_reservations([Reservation(3, 2, "D00D0004", T0)])
        persistence.save_reservations(kept)
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_reservations() == kept


def test_decisions_are_read_newest_or_oldest_and_by_utc_time(store: Store) -> None:
    for minute in range(5):
        store.authorization_put(T0 + timedelta(minutes=minute), "CAFE01", 1, "connector",
                                minute % 2 == 0, "csms", "Accepted", f"r{minute}")
    assert [r["reason"] for r in store.authorization_rows(limit=2)] == ["r0", "r1"]
    assert [r["reason"] for r in store.authorization_rows(limit=2, newest=True)] == ["r3", "r4"]
    berlin = timezone(timedelta(hours=1))  # 13:01 in Berlin is 12:01 UTC
    since = (T0 + timedelta(minutes=1)).astimezone(berlin)
    until = (T0 + timedelta(minutes=3)).astimezone(berlin)
    assert [r["reason"] for r in store.authorization_rows(since=since, until=until)] == [
        "r1", "r2", "r3"]


def test_a_stopped_agents_store_is_read_only_and_a_running_ones_is_locked(
    tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match="no such file"):
        Store.read_only(tmp_path)
    running = Store.open(tmp_path)
    running.authorization_put(T0, "CAFE01", 1, "api", False, "csms", "Invalid", "unknown_card")
    with pytest.raises(StoreError, match="locked"):
        with Store.read_only(tmp_path) as reader:
            reader.authorization_rows()
    running.close()
    with Store.read_only(tmp_path) as reader:
        assert [r["reason"] for r in reader.authorization_rows()] == ["unknown_card"]
        with pytest.raises(StoreError):
            reader.authorization_put(T0, "X", 1, "api", True, "csms", None, "accepted")
    with Store.open(tmp_path) as again:  # the reader left no lock behind
        assert again.schema_version == len(MIGRATIONS)
def test_charging_profiles_are_kept_as_records(tmp_path: Path) -> None:
    """Schema 5: every field of a profile comes back as it was saved (agent/profile_records)."""
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    profile = ChargingProfile(
        7, 0, 3, "TxDefaultProfile", "Recurring",
        ChargingSchedule("W", (SchedulePeriod(0, 4140.0, 1), SchedulePeriod(3600, 11040.0)),
                         86400, start, 1380.0),
        "Daily", start, datetime(2027, 1, 1, tzinfo=UTC), None)
    with Store.open(tmp_path) as store:
        StorePersistence(store).save_charging_profiles([profile])
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_charging_profiles() == [profile]
        StorePersistence(store).save_charging_profiles([])
        assert StorePersistence(store).load_charging_profiles() == []


def test_local_limits_survive_a_reopen_and_clearing_both_forgets_the_connector(
    tmp_path: Path
) -> None:
    """Schema 6: the local limit (0 A: a pause) and the phase request, each with its source."""
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store)
        assert persistence.load_local_limits() == {}
        persistence.save_local_limits(1, LocalLimits((10.0, "hems"), (1, "hems")))
        persistence.save_local_limits(2, LocalLimits((0.0, "app")))
        persistence.save_local_limits(3, LocalLimits(None, (3, "cli")))
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store)
        assert persistence.load_local_limits() == {
            1: LocalLimits((10.0, "hems"), (1, "hems")),
            2: LocalLimits((0.0, "app")),
            3: LocalLimits(None, (3, "cli")),
        }
        persistence.save_local_limits(1, LocalLimits((16.0, "hems")))
        persistence.save_local_limits(2, LocalLimits())
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_local_limits() == {
            1: LocalLimits((16.0, "hems")), 3: LocalLimits(None, (3, "cli"))}
    raw = sqlite3.connect(tmp_path / FILE_NAME)
    assert raw.execute("SELECT connector_id FROM local_limits").fetchall() == [(1,), (3,)]
    raw.close()


def test_a_local_limit_is_written_when_it_changes_and_again_after_a_failed_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A repeat writes nothing. A failed write is logged and reported to on_write (the store
    fault), as for availability, without raising (the limit stays in force in memory); the
    same value saved again is written once the store takes writes again."""
    outcomes: list[StoreError | None] = []
    with Store.open(tmp_path) as store:
        persistence = StorePersistence(store, outcomes.append)
        assert persistence.load_local_limits() == {}
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        persistence.save_local_limits(1, LocalLimits((10.0, "hems")))
        persistence.save_local_limits(1, LocalLimits((10.0, "hems")))  # repeated
        persistence.save_local_limits(2, LocalLimits())  # nothing asked, no row
        assert sum("local_limits" in s for s in statements) == 1 and outcomes == [None]
        store._db.execute("PRAGMA query_only = ON")  # SQLite refuses every write
        with caplog.at_level(logging.ERROR):
            persistence.save_local_limits(1, LocalLimits((0.0, "hems")))
        assert "local limit of connector 1 not saved" in caplog.text
        assert isinstance(outcomes[-1], StoreError)
        store._db.execute("PRAGMA query_only = OFF")
        persistence.save_local_limits(1, LocalLimits((0.0, "hems")))
        assert outcomes[-1] is None
    with Store.open(tmp_path) as store:
        assert StorePersistence(store).load_local_limits() == {1: LocalLimits((0.0, "hems"))}
