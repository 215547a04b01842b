"""The agent's durable state: one SQLite database, ``<state_dir>/evse-agent.db``.

What it holds (DESIGN.md, Durability): the outbound journal of transaction messages, the
transactions those messages describe, the OCPP configuration values the CSMS changed, the
availability of each connector, the authorization cache and the local authorization list,
reservations, charging profiles, and what local clients asked of each connector (its current
limit and its 1/3-phase request).

Contract:

* Every public method that writes commits before it returns, durably: WAL with
  ``synchronous=FULL`` fsyncs the log at each commit, so a committed row survives a power cut.
  Inside ``with store.write():`` the writes of the block share one commit (one fsync).
* Anything SQLite (or the file system) refuses becomes a :class:`StoreError` naming the file;
  a failed write block is rolled back whole. Nothing is dropped silently.
* The database is opened in exclusive locking mode: one agent owns a state directory (a second
  one fails at :meth:`Store.open` with "database is locked"), and no ``-shm`` file is kept, so
  the only writes are the log and its checkpoints (SD cards wear out).
* The schema has a version; :data:`MIGRATIONS` is applied in order at open. To change the
  schema, append a migration; never edit one that has shipped.

The store knows rows, not OCPP messages: :mod:`agent.journal` turns messages into rows, and
:class:`StorePersistence` serves the runtime's :class:`agent.persistence.Persistence`.
Not thread-safe: use it from the event loop's thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core.schedule import ChargingProfile
from agent.core.types import AuthorizationInfo, AuthStatus, LocalLimits, Reservation
from agent.profile_records import from_json, to_json

log = logging.getLogger(__name__)

FILE_NAME = "evse-agent.db"
PAGE_SIZE = 1024  # bytes; small pages: each commit writes whole pages to the log
WAL_LIMIT_BYTES = 1 << 20  # the log is truncated to this after a checkpoint

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema
    (
        """CREATE TABLE journal (
            seq        INTEGER PRIMARY KEY,           -- delivery order
            ref        TEXT    NOT NULL,              -- the core's ref, the OCPP unique id
            kind       TEXT    NOT NULL,              -- StartTransaction, MeterValues, ...
            tx_ref     INTEGER,
            body       TEXT    NOT NULL,              -- JSON, see agent.journal
            attempts   INTEGER NOT NULL DEFAULT 0,
            not_before REAL    NOT NULL DEFAULT 0     -- UTC epoch seconds, 0: due now
        )""",
        """CREATE TABLE transactions (
            tx_ref           INTEGER PRIMARY KEY,
            connector_id     INTEGER NOT NULL,
            id_tag           TEXT    NOT NULL,
            meter_start      INTEGER NOT NULL,
            started_at       TEXT    NOT NULL,
            transaction_id   INTEGER,                 -- the CSMS's, from StartTransaction.conf
            last_meter_wh    REAL,
            last_meter_at    TEXT,
            last_activity_at TEXT    NOT NULL,        -- the newest timestamp journaled for it
            stopped          INTEGER NOT NULL DEFAULT 0,
            stop_reason      TEXT,
            meter_stop       INTEGER,
            stopped_at       TEXT,
            start_confirmed  INTEGER NOT NULL DEFAULT 0,
            stop_confirmed   INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE settings (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE availability (
            connector_id INTEGER PRIMARY KEY,
            operative    INTEGER NOT NULL
        )""",
        """CREATE TABLE auth_cache (
            id_tag        TEXT PRIMARY KEY COLLATE NOCASE,
            status        TEXT NOT NULL,
            parent_id_tag TEXT,
            expiry        TEXT,
            updated_at    TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE local_list (
            id_tag        TEXT PRIMARY KEY COLLATE NOCASE,
            status        TEXT NOT NULL,
            parent_id_tag TEXT,
            expiry        TEXT
        ) WITHOUT ROWID""",
        """CREATE TABLE local_list_version (
            id      INTEGER PRIMARY KEY CHECK (id = 0),
            version INTEGER NOT NULL
        )""",
        "INSERT INTO local_list_version (id, version) VALUES (0, 0)",
    ),
    # 2: the journal holds the core's version-neutral messages (agent/core/messages.py), named
    # by message (TransactionStarted) instead of the OCPP 1.6 action (StartTransaction), each
    # with its seq_no; transactions remember the newest seq_no. Undelivered rows are kept and
    # rewritten in place. A row's seq_no counts the rows of its transaction before it, plus
    # one when the start was already delivered (1.6 never sends it; it only orders 2.0.1).
    (
        "ALTER TABLE transactions ADD COLUMN last_seq_no INTEGER NOT NULL DEFAULT 0",
        """UPDATE journal SET body = json_set(body, '$.seq_no',
            (SELECT count(*) FROM journal AS j WHERE j.tx_ref = journal.tx_ref
                AND j.seq < journal.seq)
            + (CASE WHEN EXISTS (SELECT 1 FROM journal AS j WHERE j.tx_ref = journal.tx_ref
                AND j.kind = 'StartTransaction') THEN 0 ELSE 1 END))
        WHERE tx_ref IS NOT NULL
            AND kind IN ('StartTransaction', 'MeterValues', 'StopTransaction')""",
        "UPDATE journal SET kind = 'TransactionStarted' WHERE kind = 'StartTransaction'",
        """UPDATE journal SET kind = 'TransactionUpdated'
        WHERE kind = 'MeterValues' AND tx_ref IS NOT NULL""",
        """UPDATE journal SET kind = 'MeterValuesReported', body = json_remove(body, '$.tx_ref')
        WHERE kind = 'MeterValues'""",
        """UPDATE journal SET kind = 'TransactionEnded', body = json_set(
            json_remove(body, '$.transaction_data'),
            '$.samples', json(coalesce(json_extract(body, '$.transaction_data'), '[]')),
            '$.connector_id', coalesce((SELECT connector_id FROM transactions AS t
                                        WHERE t.tx_ref = journal.tx_ref), 0))
        WHERE kind = 'StopTransaction'""",
        """UPDATE transactions SET last_seq_no = coalesce((SELECT max(json_extract(body,
            '$.seq_no')) FROM journal WHERE journal.tx_ref = transactions.tx_ref), 0)""",
    ),
    # 3: reservations (ReserveNow) survive restarts
    (
        """CREATE TABLE reservations (
            reservation_id INTEGER PRIMARY KEY,
            connector_id   INTEGER NOT NULL,          -- 0: any connector
            id_tag         TEXT    NOT NULL,
            group_id       TEXT,                      -- parentIdTag
            expiry         TEXT    NOT NULL
        )""",
    ),
    # 4: session records (agent/sessions.py) and the authorization decisions, for the local
    # sessions API (agent/api). Nothing existing changes.
    (
        """CREATE TABLE sessions (
            id         TEXT PRIMARY KEY,
            id_tag     TEXT NOT NULL COLLATE NOCASE,
            status     TEXT NOT NULL,
            created_at TEXT NOT NULL,               -- ISO 8601 UTC
            body       TEXT NOT NULL                -- JSON, agent.sessions.to_record
        )""",
        "CREATE INDEX sessions_by_tag ON sessions (id_tag, created_at)",
        "CREATE INDEX sessions_by_time ON sessions (created_at)",
        """CREATE TABLE authorizations (
            seq          INTEGER PRIMARY KEY,
            at           TEXT    NOT NULL,          -- ISO 8601 UTC
            id_tag       TEXT    NOT NULL COLLATE NOCASE,
            connector_id INTEGER NOT NULL,
            purpose      TEXT    NOT NULL,
            accepted     INTEGER NOT NULL,
            source       TEXT    NOT NULL,
            status       TEXT,
            reason       TEXT    NOT NULL
        )""",
        "CREATE INDEX authorizations_by_tag ON authorizations (id_tag, at)",
        """CREATE TABLE webhooks (
            seq        INTEGER PRIMARY KEY,         -- delivery order (per session too)
            session_id TEXT,
            body       TEXT    NOT NULL,            -- the JSON posted
            attempts   INTEGER NOT NULL DEFAULT 0,
            not_before REAL    NOT NULL DEFAULT 0   -- UTC epoch seconds, 0: due now
        )""",
    ),
    # 5: charging profiles (SetChargingProfile) survive restarts
    (
        """CREATE TABLE charging_profiles (
            profile_id INTEGER PRIMARY KEY,
            body       TEXT    NOT NULL             -- JSON, agent.profile_records.to_json
        )""",
    ),
    # 6: the local limit and the local phase request (agent/local_limit.py) survive restarts;
    # a row per connector that has either, removed when both are cleared
    (
        """CREATE TABLE local_limits (
            connector_id  INTEGER PRIMARY KEY,
            amps          REAL,                   -- NULL: no local limit; 0: paused
            amps_source   TEXT,
            phases        INTEGER,                -- NULL: no phase request; else 1 or 3
            phases_source TEXT
        )""",
    ),
)
"""Each entry is one schema version's statements, applied in one commit with the new version."""


class StoreError(OSError):
    """The state store cannot be opened, read or written. ``path`` is the database file."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


# --- rows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalRow:
    seq: int
    ref: str
    kind: str
    tx_ref: int | None
    body: str
    attempts: int
    not_before: float  # UTC epoch seconds; 0 means due now


@dataclass(frozen=True)
class TransactionRow:
    tx_ref: int
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: datetime
    transaction_id: int | None
    last_meter_wh: float | None
    last_meter_at: datetime | None
    last_activity_at: datetime
    stopped: bool
    stop_reason: str | None
    meter_stop: int | None
    stopped_at: datetime | None
    start_confirmed: bool
    stop_confirmed: bool
    last_seq_no: int = 0  # the seq_no of the newest message journaled for it


@dataclass(frozen=True)
class AuthEntry:
    """An idTagInfo kept for offline authorization (cache or local list)."""

    id_tag: str
    status: str
    parent_id_tag: str | None = None
    expiry: datetime | None = None
    updated_at: datetime | None = None  # cache only: when the CSMS last said so


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _text(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _utc_text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


# --- the store --------------------------------------------------------------------------


class Store:
    """One open database. Build it with :meth:`Store.open`; :meth:`close` when done."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._depth = 0
        self._journal_rows = 0

    @classmethod
    def open(cls, state_dir: Path, max_bytes: int | None = None) -> Store:
        """Open (creating and migrating as needed) the database in ``state_dir``.

        ``max_bytes`` caps the database file; a write beyond it fails as "full". Raises
        StoreError when the directory or the file cannot be created, read or written.
        """
        path = Path(state_dir) / FILE_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"state store {path}: cannot open: {error}", path) from error
        store = cls(path, db)
        try:
            store._prepare(max_bytes)
        except BaseException:
            db.close()
            raise
        return store

    @classmethod
    def read_only(cls, state_dir: Path) -> Store:
        """The database of an agent that is not running, for reading only (``evse-agent
        log``): nothing is created, migrated or written, and no lock is kept. The running
        agent holds the database exclusively, so this raises StoreError ("database is
        locked") while it runs; ask it over its status socket instead. Also raises
        StoreError when there is no database or it may not be read."""
        path = Path(state_dir) / FILE_NAME
        if not path.is_file():
            raise StoreError(f"state store {path}: no such file", path)
        try:  # SQLite URI: https://www.sqlite.org/uri.html (mode=ro)
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None, timeout=0.5)
        except sqlite3.Error as error:
            raise StoreError(f"state store {path}: cannot open: {error}", path) from error
        return cls(path, db)

    def _prepare(self, max_bytes: int | None) -> None:
        with self._guard("cannot open"):
            self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # new files only
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL (journal mode {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            if max_bytes is not None:
                pages = max(1, max_bytes // self._page_size())
                self._db.execute(f"PRAGMA max_page_count = {pages}")
        self._migrate()
        self._journal_rows = self._count_journal()

    def close(self) -> None:
        """Close the database. Idempotent."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions of the database, and errors ----------------------------------------

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            hint = " (is another agent using this state directory?)" if "locked" in str(
                error) else ""
            raise StoreError(f"state store {self.path}: {what}: {error}{hint}",
                             self.path) from error

    @contextmanager
    def write(self) -> Iterator[None]:
        """Group writes into one commit (one fsync); nested blocks join the outer one.

        On any error the whole block is rolled back and StoreError (or the error) raised.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._guard("cannot write"):
            self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            with self._guard("cannot commit"):
                self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._depth = 0

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._journal_rows = self._count_journal()
        except sqlite3.Error as error:
            log.error("state store %s: rollback failed: %s", self.path, error)

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Execute one statement inside a write block (opening one if needed)."""
        with self.write(), self._guard("cannot write"):
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        with self._guard("cannot read"):
            return list(self._db.execute(sql, args).fetchall())

    def _page_size(self) -> int:
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        assert isinstance(size, int)
        return size

    # --- schema ---------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        rows = self._rows("SELECT version FROM schema_version")
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        with self.write(), self._guard("cannot migrate"):
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise sqlite3.DatabaseError(
                    f"schema version {current} is newer than this agent ({len(MIGRATIONS)})"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                log.info("state store %s: migrating to schema %d", self.path, version)
                for statement in MIGRATIONS[version - 1]:
                    self._db.execute(statement)
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS),))

    # --- the outbound journal -------------------------------------------------------------

    @property
    def journal_size(self) -> int:
        """Rows in the journal."""
        return self._journal_rows

    def _count_journal(self) -> int:
        rows = self._rows("SELECT count(*) FROM journal")
        return int(rows[0][0])

    def journal_append(self, ref: str, kind: str, tx_ref: int | None, body: str) -> int:
        """Add a row at the end of the journal; return its ``seq``."""
        cursor = self._run(
            "INSERT INTO journal (ref, kind, tx_ref, body) VALUES (?, ?, ?, ?)",
            (ref, kind, tx_ref, body),
        )
        self._journal_rows += 1
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def journal_rows(self) -> list[JournalRow]:
        """Every row, oldest first."""
        rows = self._rows(
            "SELECT seq, ref, kind, tx_ref, body, attempts, not_before FROM journal ORDER BY seq"
        )
        return [JournalRow(*row) for row in rows]

    def journal_oldest(self, kind: str, limit: int, exclude: int | None = None
                       ) -> list[JournalRow]:
        """The oldest ``limit`` rows of ``kind``, leaving out the row ``exclude``."""
        rows = self._rows(
            "SELECT seq, ref, kind, tx_ref, body, attempts, not_before FROM journal"
            " WHERE kind = ? AND seq IS NOT ? ORDER BY seq LIMIT ?",
            (kind, exclude, limit),
        )
        return [JournalRow(*row) for row in rows]

    def journal_delete(self, seq: int) -> None:
        cursor = self._run("DELETE FROM journal WHERE seq = ?", (seq,))
        self._journal_rows -= cursor.rowcount

    def journal_retry(self, seq: int, attempts: int, not_before: float) -> None:
        """Record a failed attempt: ``attempts`` so far, next try at ``not_before``."""
        self._run("UPDATE journal SET attempts = ?, not_before = ? WHERE seq = ?",
                  (attempts, not_before, seq))

    # --- transactions ---------------------------------------------------------------------

    def tx_open(self, tx_ref: int, connector_id: int, id_tag: str, meter_start: int,
                started_at: datetime) -> None:
        """A transaction started (StartTransaction journaled)."""
        self._run(
            "INSERT INTO transactions (tx_ref, connector_id, id_tag, meter_start, started_at,"
            " last_activity_at) VALUES (?, ?, ?, ?, ?, ?)",
            (tx_ref, connector_id, id_tag, meter_start, _text(started_at), _text(started_at)),
        )

    def tx_meter(self, tx_ref: int, energy_wh: float | None, at: datetime | None,
                 seq_no: int | None = None) -> None:
        """An update of the transaction, its message ``seq_no``, was journaled (``energy_wh``
        None: no register; ``at`` None: no sample)."""
        if seq_no is not None:
            self._run("UPDATE transactions SET last_seq_no = ? WHERE tx_ref = ?",
                      (seq_no, tx_ref))
        if at is None:
            return
        if energy_wh is None:
            self._run("UPDATE transactions SET last_activity_at = ? WHERE tx_ref = ?",
                      (_text(at), tx_ref))
            return
        self._run(
            "UPDATE transactions SET last_meter_wh = ?, last_meter_at = ?, last_activity_at = ?"
            " WHERE tx_ref = ?",
            (energy_wh, _text(at), _text(at), tx_ref),
        )

    def tx_close(self, tx_ref: int, reason: str, meter_stop: int, at: datetime) -> None:
        """The transaction stopped (StopTransaction journaled)."""
        self._run(
            "UPDATE transactions SET stopped = 1, stop_reason = ?, meter_stop = ?,"
            " stopped_at = ?, last_activity_at = ? WHERE tx_ref = ?",
            (reason, meter_stop, _text(at), _text(at), tx_ref),
        )

    def tx_confirm_start(self, tx_ref: int, transaction_id: int) -> None:
        self._run(
            "UPDATE transactions SET transaction_id = ?, start_confirmed = 1 WHERE tx_ref = ?",
            (transaction_id, tx_ref),
        )

    def tx_confirm_stop(self, tx_ref: int) -> None:
        self._run("UPDATE transactions SET stop_confirmed = 1 WHERE tx_ref = ?", (tx_ref,))

    def transaction(self, tx_ref: int) -> TransactionRow | None:
        rows = self._transactions("WHERE tx_ref = ?", (tx_ref,))
        return rows[0] if rows else None

    def transactions(self) -> list[TransactionRow]:
        """Every transaction kept, oldest first."""
        return self._transactions("", ())

    def open_transactions(self) -> list[TransactionRow]:
        """Transactions started and not stopped, oldest first."""
        return self._transactions("WHERE stopped = 0", ())

    def _transactions(self, where: str, args: tuple[object, ...]) -> list[TransactionRow]:
        rows = self._rows(
            "SELECT tx_ref, connector_id, id_tag, meter_start, started_at, transaction_id,"
            " last_meter_wh, last_meter_at, last_activity_at, stopped, stop_reason, meter_stop,"
            " stopped_at, start_confirmed, stop_confirmed, last_seq_no"
            f" FROM transactions {where}"
            " ORDER BY tx_ref",
            args,
        )
        return [_transaction_row(row) for row in rows]

    def transaction_ids(self) -> dict[int, int]:
        """tx_ref -> the CSMS's transactionId, for every transaction it is known of."""
        rows = self._rows(
            "SELECT tx_ref, transaction_id FROM transactions WHERE transaction_id IS NOT NULL"
        )
        return {int(tx_ref): int(txid) for tx_ref, txid in rows}

    def max_tx_ref(self) -> int:
        """The highest tx_ref ever journaled (0 for none): the newest row is never pruned."""
        rows = self._rows(
            "SELECT max(m) FROM (SELECT max(tx_ref) AS m FROM transactions"
            " UNION ALL SELECT max(tx_ref) FROM journal)"
        )
        value = rows[0][0]
        return int(value) if value is not None else 0

    def prune_transactions(self, keep: int) -> int:
        """Forget stopped transactions with nothing left to deliver, but the newest ``keep``
        (at least one, so :meth:`max_tx_ref` never goes back). Returns how many went."""
        cursor = self._run(
            "DELETE FROM transactions WHERE stopped = 1"
            " AND tx_ref NOT IN (SELECT tx_ref FROM transactions ORDER BY tx_ref DESC LIMIT ?)"
            " AND NOT EXISTS (SELECT 1 FROM journal WHERE journal.tx_ref = transactions.tx_ref)",
            (max(1, keep),),
        )
        return cursor.rowcount

    # --- configuration and availability ---------------------------------------------------

    def settings(self) -> dict[str, str]:
        """Configuration values the CSMS set: key -> value as OCPP transports it."""
        return {str(name): str(value) for name, value in self._rows("SELECT * FROM settings")}

    def save_setting(self, name: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value))

    def availability(self) -> dict[int, bool]:
        """connector id -> operative, for each connector whose availability was changed."""
        rows = self._rows("SELECT connector_id, operative FROM availability")
        return {int(cid): bool(operative) for cid, operative in rows}

    def set_availability(self, connector_id: int, operative: bool) -> None:
        self._run("INSERT OR REPLACE INTO availability VALUES (?, ?)",
                  (connector_id, int(operative)))

    # --- authorization cache and local list -----------------------------------------------

    def auth_cache_get(self, id_tag: str) -> AuthEntry | None:
        rows = self._rows("SELECT * FROM auth_cache WHERE id_tag = ?", (id_tag,))
        return _auth_entry(rows[0]) if rows else None

    def auth_cache_put(self, entry: AuthEntry) -> None:
        self._run("INSERT OR REPLACE INTO auth_cache VALUES (?, ?, ?, ?, ?)",
                  (entry.id_tag, entry.status, entry.parent_id_tag, _text(entry.expiry),
                   _text(entry.updated_at) or ""))

    def auth_cache_entries(self) -> list[AuthEntry]:
        return [_auth_entry(row) for row in self._rows("SELECT * FROM auth_cache")]

    def auth_cache_clear(self) -> None:
        self._run("DELETE FROM auth_cache")

    def local_list_version(self) -> int:
        rows = self._rows("SELECT version FROM local_list_version")
        return int(rows[0][0])

    def local_list_get(self, id_tag: str) -> AuthEntry | None:
        rows = self._rows("SELECT * FROM local_list WHERE id_tag = ?", (id_tag,))
        return _auth_entry(rows[0]) if rows else None

    def local_list_entries(self) -> list[AuthEntry]:
        return [_auth_entry(row) for row in self._rows("SELECT * FROM local_list")]

    def local_list_put(self, version: int, entries: Iterable[AuthEntry],
                       remove: Iterable[str] = ()) -> None:
        """Add or replace ``entries``, remove the tags in ``remove``, set ``version``; one
        commit. A full update is :meth:`local_list_clear` then this, in one write block."""
        with self.write():
            for entry in entries:
                self._run("INSERT OR REPLACE INTO local_list VALUES (?, ?, ?, ?)",
                          (entry.id_tag, entry.status, entry.parent_id_tag, _text(entry.expiry)))
            for id_tag in remove:
                self._run("DELETE FROM local_list WHERE id_tag = ?", (id_tag,))
            self._run("UPDATE local_list_version SET version = ?", (version,))

    def reservations(self) -> list[Reservation]:
        rows = self._rows("SELECT reservation_id, connector_id, id_tag, group_id, expiry"
                          " FROM reservations ORDER BY reservation_id")
        return [Reservation(int(r[0]), int(r[1]), str(r[2]), datetime.fromisoformat(r[4]), r[3])
                for r in rows]

    def replace_reservations(self, reservations: Iterable[Reservation]) -> None:
        with self.write():
            self._run("DELETE FROM reservations")
            for r in reservations:
                self._run("INSERT INTO reservations VALUES (?, ?, ?, ?, ?)",
                          (r.reservation_id, r.connector_id, r.id_tag, r.group_id,
                           _text(r.expiry)))

    def charging_profiles(self) -> list[str]:
        """The kept charging profiles as JSON records (agent/profile_records.py)."""
        return [str(r[0]) for r in self._rows(
            "SELECT body FROM charging_profiles ORDER BY profile_id")]

    def replace_charging_profiles(self, records: Iterable[tuple[int, str]]) -> None:
        with self.write():
            self._run("DELETE FROM charging_profiles")
            for profile_id, body in records:
                self._run("INSERT INTO charging_profiles VALUES (?, ?)", (profile_id, body))

    def local_limits(self) -> dict[int, LocalLimits]:
        """connector id -> what local clients asked of it (schema 6)."""
        rows = self._rows("SELECT connector_id, amps, amps_source, phases, phases_source"
                          " FROM local_limits")
        return {int(cid): LocalLimits(
            None if amps is None else (float(amps), str(who)),
            None if phases is None else (int(phases), str(phase_who)))
            for cid, amps, who, phases, phase_who in rows}

    def set_local_limits(self, connector_id: int, limits: LocalLimits) -> None:
        """Keep ``limits`` for the connector; nothing asked removes its row."""
        if limits == LocalLimits():
            self._run("DELETE FROM local_limits WHERE connector_id = ?", (connector_id,))
            return
        amps, who = limits.limit or (None, None)
        phases, phase_who = limits.phase_request or (None, None)
        self._run("INSERT OR REPLACE INTO local_limits VALUES (?, ?, ?, ?, ?)",
                  (connector_id, amps, who, phases, phase_who))

    def local_list_clear(self) -> None:
        """Empty the list and set its version to 0."""
        with self.write():
            self._run("DELETE FROM local_list")
            self._run("UPDATE local_list_version SET version = 0")


    # --- session records and authorization decisions (schema 3) ------------------------------

    def session_put(self, session_id: str, id_tag: str, status: str, created_at: datetime,
                    body: str) -> None:
        self._run("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?)",
                  (session_id, id_tag, status, _text(created_at), body))

    def session_bodies(self, *, id_tag: str | None = None, status: str | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       limit: int = -1, offset: int = 0, unfinished: bool = False) -> list[str]:
        """Session bodies, newest first, filtered and paged; ``unfinished``: only those not
        COMPLETE or FAILED (what a restart takes back into memory)."""
        where, args = self._filters(("id_tag", id_tag), ("status", status),
                                    ("created_at >=", _text(since)),
                                    ("created_at <", _text(until)))
        if unfinished:
            where += (" AND " if where else " WHERE ") + "status NOT IN ('COMPLETE', 'FAILED')"
        return [str(body) for (body,) in self._rows(
            f"SELECT body FROM sessions{where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*args, limit, offset))]

    def session_body(self, session_id: str) -> str | None:
        rows = self._rows("SELECT body FROM sessions WHERE id = ?", (session_id,))
        return str(rows[0][0]) if rows else None

    def session_count(self, *, id_tag: str | None = None, status: str | None = None,
                      since: datetime | None = None, until: datetime | None = None) -> int:
        where, args = self._filters(("id_tag", id_tag), ("status", status),
                                    ("created_at >=", _text(since)),
                                    ("created_at <", _text(until)))
        return int(self._rows(f"SELECT count(*) FROM sessions{where}", args)[0][0])

    @staticmethod
    def _filters(*pairs: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
        terms = [(column if " " in column else f"{column} =") + " ?"
                 for column, value in pairs if value is not None]
        values = tuple(value for _, value in pairs if value is not None)
        return (" WHERE " + " AND ".join(terms) if terms else ""), values

    def authorization_put(self, at: datetime, id_tag: str, connector_id: int, purpose: str,
                          accepted: bool, source: str, status: str | None,
                          reason: str) -> None:
        self._run("INSERT INTO authorizations (at, id_tag, connector_id, purpose, accepted, "
                  "source, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (_text(at), id_tag, connector_id, purpose, int(accepted), source, status,
                   reason))

    def authorization_rows(self, *, id_tag: str | None = None, since: datetime | None = None,
                           until: datetime | None = None, limit: int = 1000,
                           newest: bool = False) -> list[dict[str, Any]]:
        """Decisions, oldest first: the oldest ``limit`` of them, or with ``newest`` the
        newest ``limit``. ``since`` and ``until`` are inclusive."""
        # ``at`` is kept as ISO 8601 in UTC: compare it with UTC text.
        where, args = self._filters(("id_tag", id_tag), ("at >=", _utc_text(since)),
                                    ("at <=", _utc_text(until)))
        order = "DESC" if newest else ""
        rows = self._rows("SELECT at, id_tag, connector_id, purpose, accepted, source, status, "
                          f"reason FROM authorizations{where} ORDER BY seq {order} LIMIT ?",
                          (*args, limit))
        if newest:
            rows.reverse()
        names = ("at", "id_tag", "connector_id", "purpose", "accepted", "source", "status",
                 "reason")
        return [{**dict(zip(names, row, strict=True)), "accepted": bool(row[4])}
                for row in rows]


    def webhook_put(self, session_id: str | None, body: str) -> None:
        self._run("INSERT INTO webhooks (session_id, body) VALUES (?, ?)", (session_id, body))

    def webhook_oldest(self) -> tuple[int, str | None, str, int, float] | None:
        """The oldest webhook: (seq, session id, body, attempts, not_before)."""
        rows = self._rows("SELECT seq, session_id, body, attempts, not_before FROM webhooks "
                          "ORDER BY seq LIMIT 1")
        if not rows:
            return None
        seq, session_id, body, attempts, not_before = rows[0]
        return int(seq), session_id, str(body), int(attempts), float(not_before)

    def webhook_done(self, seq: int) -> None:
        self._run("DELETE FROM webhooks WHERE seq = ?", (seq,))

    def webhook_retry(self, seq: int, attempts: int, not_before: float) -> None:
        self._run("UPDATE webhooks SET attempts = ?, not_before = ? WHERE seq = ?",
                  (attempts, not_before, seq))

    def webhook_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM webhooks")[0][0])


def _transaction_row(row: Any) -> TransactionRow:
    (tx_ref, cid, id_tag, meter_start, started_at, txid, last_wh, last_at, activity, stopped,
     reason, meter_stop, stopped_at, start_ok, stop_ok, last_seq_no) = row
    return TransactionRow(
        tx_ref, cid, id_tag, meter_start, datetime.fromisoformat(started_at), txid, last_wh,
        _time(last_at), datetime.fromisoformat(activity), bool(stopped), reason, meter_stop,
        _time(stopped_at), bool(start_ok), bool(stop_ok), last_seq_no,
    )


def _auth_entry(row: Any) -> AuthEntry:
    id_tag, status, parent, expiry, *updated = row
    return AuthEntry(id_tag, status, parent, _time(expiry), _time(updated[0] or None)
                     if updated else None)


# --- the runtime's persistence ----------------------------------------------------------


class StorePersistence:
    """:class:`agent.persistence.Persistence` on the store, for the runtime's effects.

    A write that fails is logged as an error and the agent runs on with the value in memory:
    a setting, an availability, a local limit or a cache entry is not worth stopping the
    charger for. The local list and the charging profiles are the exceptions: their
    StoreError is raised, so that the CSMS hears Failed (TC_043_3) or Rejected and the core
    keeps what it had. Reads raise StoreError (they happen at start, where a broken store
    stops the agent). Each write's outcome goes to ``on_write`` (the StoreError, or None),
    which the composition root points at :meth:`agent.outbox.Outbox.store_written`: a
    failing store is a fault, whoever writes first.
    """

    def __init__(self, store: Store,
                 on_write: Callable[[StoreError | None], None] = lambda error: None) -> None:
        self.store = store
        self.on_write = on_write
        # The local limits as the store holds them, once loaded or written; a connector
        # without a row holds nothing asked, but only once the rows were loaded.
        self._local_limits: dict[int, LocalLimits] = {}
        self._no_row: LocalLimits | None = None

    def save_setting(self, name: str, value: str) -> None:
        self._try(lambda: self.store.save_setting(name, value), f"configuration {name}")

    def save_availability(self, connector_id: int, operative: bool) -> None:
        self._try(lambda: self.store.set_availability(connector_id, operative),
                  f"availability of connector {connector_id}")

    def cache_id_tag(self, id_tag: str | None, info: AuthorizationInfo | None) -> None:
        if id_tag is None or info is None:
            self._try(self.store.auth_cache_clear, "clearing the authorization cache")
            return
        entry = AuthEntry(id_tag, info.status.value, info.group_id, info.expiry,
                          datetime.now(UTC))
        self._try(lambda: self.store.auth_cache_put(entry), f"cache entry {id_tag}")

    def save_local_list(self, version: int, entries: list[tuple[str, AuthorizationInfo]]) -> None:
        """Replace the whole list (the core hands over the list after every update). Raises
        StoreError."""
        rows = [AuthEntry(id_tag, info.status.value, info.group_id, info.expiry)
                for id_tag, info in entries]

        def replace() -> None:
            with self.store.write():
                self.store.local_list_clear()
                self.store.local_list_put(version, rows)

        replace()

    def save_reservations(self, reservations: list[Reservation]) -> None:
        self._try(lambda: self.store.replace_reservations(reservations), "reservations")

    def load_reservations(self) -> list[Reservation]:
        return self.store.reservations()

    def save_charging_profiles(self, profiles: list[ChargingProfile]) -> None:
        """Replace every kept profile. Raises StoreError (after reporting it to ``on_write``):
        a SetChargingProfile whose profile would not survive a restart is Rejected."""
        records = [(p.profile_id, to_json(p)) for p in profiles]
        try:
            self.store.replace_charging_profiles(records)
        except StoreError as error:
            self.on_write(error)
            raise
        self.on_write(None)

    def load_charging_profiles(self) -> list[ChargingProfile]:
        return [from_json(body) for body in self.store.charging_profiles()]

    def save_local_limits(self, connector_id: int, limits: LocalLimits) -> None:
        """Write ``limits`` unless the store holds them already (a home energy manager may
        repeat its limit every few seconds; a skipped write reports nothing). A write that
        fails is logged and reported to ``on_write``, as for availability: the limit stays
        in force in memory (the API's answer shows it), and the next save for the connector
        writes again, the same value too."""
        if self._local_limits.get(connector_id, self._no_row) == limits:
            return
        if self._try(lambda: self.store.set_local_limits(connector_id, limits),
                     f"local limit of connector {connector_id}"):
            self._local_limits[connector_id] = limits

    def load_local_limits(self) -> dict[int, LocalLimits]:
        self._local_limits, self._no_row = self.store.local_limits(), LocalLimits()
        return dict(self._local_limits)

    def load_settings(self) -> dict[str, str]:
        return self.store.settings()

    def load_local_list(self) -> tuple[int, list[tuple[str, AuthorizationInfo]]]:
        return self.store.local_list_version(), [
            (e.id_tag, _id_tag_info(e)) for e in self.store.local_list_entries()]

    def load_availability(self) -> dict[int, bool]:
        return self.store.availability()

    def load_cache(self) -> list[tuple[str, AuthorizationInfo]]:
        return [(e.id_tag, _id_tag_info(e)) for e in self.store.auth_cache_entries()]

    def _try(self, write: Callable[[], None], what: str) -> bool:
        """Whether the write succeeded."""
        try:
            write()
        except StoreError as error:
            log.error("%s not saved: %s", what, error)
            self.on_write(error)
            return False
        self.on_write(None)
        return True


def _id_tag_info(entry: AuthEntry) -> AuthorizationInfo:
    return AuthorizationInfo(AuthStatus(entry.status), entry.parent_id_tag, entry.expiry)
