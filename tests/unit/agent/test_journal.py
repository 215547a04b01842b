"""The journal: the message codec round-trips exactly, and the transactions table follows the
messages journaled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core import messages as msg
from agent.core.types import (
    AuthorizationInfo,
    AuthStatus,
    ConnectorStatus,
    ErrorCode,
    StopReason,
    TxTrigger,
)
from agent.journal import Journal, JournalError, decode, encode, kind_of
from agent.store import Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# --- the codec --------------------------------------------------------------------------

texts = st.text(max_size=30)
ints = st.integers(min_value=-(2**62), max_value=2**62)
floats = st.floats(allow_nan=False)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
moments = st.datetimes(timezones=offsets)
sampled_values = st.builds(msg.SampledValue, texts, floats, texts, st.none() | texts)
samples = st.builds(msg.MeterSample, moments, st.lists(sampled_values, max_size=4).map(tuple),
                    texts)
sample_tuples = st.lists(samples, max_size=3).map(tuple)

messages: st.SearchStrategy[msg.OutboundReq] = st.one_of(
    st.builds(msg.TransactionStarted, ints, ints, texts, ints, moments, ints,
              st.sampled_from(TxTrigger), st.none() | ints, st.none() | ints),
    st.builds(msg.TransactionUpdated, ints, ints, sample_tuples, ints),
    st.builds(msg.MeterValuesReported, ints, sample_tuples),
    st.builds(msg.TransactionEnded, ints, ints, ints, moments, st.sampled_from(StopReason),
              ints, st.none() | texts, sample_tuples),
    st.builds(msg.StatusChanged, ints, st.sampled_from(ConnectorStatus),
              st.sampled_from(ErrorCode), moments, st.none() | texts, st.none() | texts),
)
EXPLICIT = (msg.TransactionStarted, msg.TransactionUpdated, msg.MeterValuesReported,
            msg.TransactionEnded, msg.StatusChanged)
messages |= st.one_of(*(st.builds(cls) for cls in get_args(msg.OutboundReq)
                        if cls not in EXPLICIT))  # the rest: inferred from their type hints


@given(messages)
def test_every_outbound_message_round_trips_exactly(req: msg.OutboundReq) -> None:
    back = decode(kind_of(req), encode(req))
    assert back == req
    assert encode(back) == encode(req)  # the same offsets, and floats stay floats
    for name, value in vars(req).items():  # the same types: enums, tuples, dataclasses
        assert type(getattr(back, name)) is type(value)


def test_a_field_with_a_default_may_be_missing_from_an_older_row() -> None:
    body = '{"tx_ref":1,"connector_id":1,"meter_stop_wh":5,' \
           '"timestamp":"2026-01-01T12:00:00+00:00","reason":"Local"}'
    assert decode("TransactionEnded", body) == msg.TransactionEnded(1, 1, 5, T0, StopReason.LOCAL)


@pytest.mark.parametrize("kind, body", [
    ("Teleport", "{}"),
    ("StopTransaction", "{}"),  # a kind of the schema before 2, which the migration renames
    ("TransactionEnded", "not json"),
    ("TransactionEnded", '{"tx_ref":1}'),
    ("TransactionEnded", '{"tx_ref":1,"connector_id":1,"meter_stop_wh":5,'
                         '"timestamp":"yesterday","reason":"x"}'),
])
def test_a_row_that_cannot_be_decoded_is_a_journal_error(kind: str, body: str) -> None:
    with pytest.raises(JournalError):
        decode(kind, body)


# --- the journal and the transactions table ----------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(Store.open(tmp_path))


def meter_values(tx_ref: int, at: datetime, wh: float) -> msg.TransactionUpdated:
    values = (msg.SampledValue("Power.Active.Import", 7000.0, "W"),
              msg.SampledValue("Energy.Active.Import.Register", wh, "Wh"))
    return msg.TransactionUpdated(tx_ref, 1, (msg.MeterSample(at, values),))


def test_start_opens_meter_values_update_and_stop_closes_the_transaction(
    journal: Journal,
) -> None:
    start = journal.append("s", msg.TransactionStarted(5, 1, "CAFE0001", 1000, T0))
    journal.confirm(start.seq, msg.TransactionStarted(5, 1, "CAFE0001", 1000, T0),
                    msg.TransactionStartResult(AuthorizationInfo(AuthStatus.ACCEPTED), 42))
    journal.append("m", meter_values(5, T0 + timedelta(seconds=10), 1012.5))
    (tx,) = journal.open_transactions()
    assert (tx.transaction_id, tx.last_meter_wh) == (42, 1012.5)
    assert tx.last_meter_at == tx.last_activity_at == T0 + timedelta(seconds=10)
    stop = msg.TransactionEnded(5, 1, 1020, T0 + timedelta(seconds=15), StopReason.LOCAL,
                                id_tag="CAFE0001")
    appended = journal.append("t", stop)
    assert journal.open_transactions() == []
    journal.confirm(appended.seq, stop, msg.TransactionEndResult())
    tx_row = journal.store.transaction(5)
    assert tx_row is not None and tx_row.stop_confirmed and tx_row.meter_stop == 1020
    assert [e.ref for e in journal.pending()] == ["m"]


def test_non_transaction_messages_do_not_touch_the_transactions_table(journal: Journal) -> None:
    journal.append("x", msg.StatusChanged(1, ConnectorStatus.AVAILABLE,
                                                 ErrorCode.NO_ERROR, T0))
    assert journal.store.transactions() == []
    assert [type(e.req) for e in journal.pending()] == [msg.StatusChanged]


def test_at_the_cap_the_oldest_meter_values_go_and_start_and_stop_stay(journal: Journal) -> None:
    journal.append("s1", msg.TransactionStarted(1, 1, "A", 0, T0))
    for i in range(1, 4):
        journal.append(f"m{i}", meter_values(1, T0 + timedelta(seconds=i), float(i)))
    journal.append("t1", msg.TransactionEnded(1, 1, 9, T0, StopReason.LOCAL))
    appended = journal.append("s2", msg.TransactionStarted(2, 1, "B", 9, T0), limit=5,
                              protect=2)  # m1 (seq 2) is in flight
    assert [row.ref for row in appended.dropped] == ["m2"]
    assert [e.ref for e in journal.pending()] == ["s1", "m1", "m3", "t1", "s2"]
    journal.append("t2", msg.TransactionEnded(2, 1, 9, T0, StopReason.LOCAL), limit=3)
    assert [e.ref for e in journal.pending()] == ["s1", "t1", "s2", "t2"]  # over the cap


def test_an_undecodable_row_is_skipped_and_kept(journal: Journal) -> None:
    journal.store.journal_append("bad", "TransactionEnded", 1, "{")
    journal.append("ok", msg.TransactionStarted(1, 1, "A", 0, T0))
    assert [e.ref for e in journal.pending()] == ["ok"]
    assert journal.store.journal_size == 2
