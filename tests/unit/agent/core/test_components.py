"""Each feature of the core alone, on a bare Context: no Station, no other feature.

The behaviour of the whole core is pinned by the other tests in this directory (through the
Station); these show that a component can be built and exercised by itself, with only the
collaborators it names.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core.availability import Availability
from agent.core.connector import Authorization, Transaction
from agent.core.context import ConnectorConfig, Context, IdSource, Pending, StationConfig
from agent.core.faults import Faults
from agent.core.outputs import Outputs
from agent.core.registration import Registration
from agent.core.settings import Settings, core_keys
from agent.core.status import StatusReport
from agent.core.transactions import Transactions
from agent.core.types import (
    AuthorizationInfo,
    AuthStatus,
    ConnectorStatus,
    ErrorCode,
    Now,
    RegistrationStatus,
    StopReason,
    TxTrigger,
)
from hal.roles import PilotState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def context(connectors: int = 1, **seed: object) -> Context:
    refs = itertools.count(1)
    config = StationConfig("Test", "Core", tuple(ConnectorConfig(i, 16.0)
                                                 for i in range(1, connectors + 1)))
    ctx = Context(config, Settings(core_keys(connectors), dict(seed)),
                  IdSource(lambda: f"m{next(refs)}", itertools.count(100).__next__))
    ctx.begin(Now(0.0, T0))
    return ctx


def sent(ctx: Context) -> list[msg.OutboundReq]:
    return [e.req for e in ctx.effects() if isinstance(e, fx.Send)]


def test_faults_alone_a_lost_reader_is_a_warning_of_the_charger_not_a_connector_fault() -> None:
    ctx = context()
    faults = Faults(ctx)
    faults.on_fault(ev.DeviceFault(0, ErrorCode.READER_FAILURE.value, True, "no answer"))
    assert not ctx.connectors[1].faulted
    assert (faults.station_error(), faults.station_info()) == (ErrorCode.READER_FAILURE,
                                                               "no answer")
    faults.on_fault(ev.DeviceFault(1, ErrorCode.GROUND_FAILURE.value, True, "RCD"))
    ctx.connectors[1].pilot = PilotState.B
    faults.on_fault(ev.DeviceFault(1, ErrorCode.GROUND_FAILURE.value, False, None))
    assert ctx.connectors[1].error_code is ErrorCode.GROUND_FAILURE  # latched while plugged
    faults.track_pilot(ctx.connectors[1], PilotState.A)
    assert not ctx.connectors[1].faulted


def test_availability_alone_inoperative_during_a_transaction_is_scheduled() -> None:
    ctx = context()
    availability = Availability(ctx)
    connector = ctx.connectors[1]
    connector.transaction = Transaction(tx_ref=1, id_tag="A", started_mono=0.0)
    assert availability.change(msg.CsmsChangeAvailability(1, False)).status == "Scheduled"
    assert connector.operative
    connector.transaction = None
    availability.apply_pending(connector)
    assert not connector.operative
    assert fx.SaveAvailability(1, False) in ctx.effects()


def test_outputs_alone_the_contactor_follows_the_transaction_and_the_ev() -> None:
    ctx = context()
    outputs = Outputs(ctx)
    outputs.on_started()
    assert fx.SetContactor(1, False) in ctx.effects()
    connector = ctx.connectors[1]
    connector.lifecycle.fire("plug")
    connector.lifecycle.fire("authorize")
    connector.transaction = Transaction(tx_ref=1, id_tag="A", started_mono=0.0,
                                        meter_start_wh=0)
    outputs.reconcile()
    assert ctx.effects() == [fx.SetOfferedCurrent(1, 16.0)]  # offered; the EV is still in B
    connector.pilot = PilotState.C
    outputs.reconcile()
    assert ctx.effects() == [fx.SetContactor(1, True)]
    connector.faults["GroundFailure"] = "RCD"
    outputs.reconcile()
    assert ctx.effects() == [fx.SetContactor(1, False), fx.SetOfferedCurrent(1, 0.0)]


def test_registration_alone_boots_on_link_up_and_retries_after_a_rejection() -> None:
    ctx = context()
    faults = Faults(ctx)
    status = StatusReport(ctx, Outputs(ctx), faults)
    accepted: list[bool] = []
    registration = Registration(ctx, status, lambda: accepted.append(True))
    registration.on_link_up()
    [boot] = sent(ctx)
    assert isinstance(boot, msg.RegistrationRequest)
    pending = ctx.answered("m1")
    assert pending == Pending("boot")
    registration.on_answer("m1", pending, msg.RegistrationResult(RegistrationStatus.REJECTED, 7))
    assert ctx.effects() == [fx.StartTimer("boot", 7.0)] and not accepted
    registration.on_boot_timer("")
    assert isinstance(sent(ctx)[0], msg.RegistrationRequest)
    registration.on_answer("m2", Pending("boot"),
                           msg.RegistrationResult(RegistrationStatus.ACCEPTED, 60))
    assert accepted == [True] and ctx.online


def test_transactions_alone_number_their_messages_and_say_what_started_them() -> None:
    ctx = context()
    remembered: list[tuple[str, AuthorizationInfo]] = []
    transactions = Transactions(ctx, Availability(ctx), lambda t, i: remembered.append((t, i)))
    connector = ctx.connectors[1]
    connector.pilot = PilotState.B
    connector.lifecycle.fire("plug")
    connector.lifecycle.fire("authorize")
    transactions.begin(connector, Authorization("CAFE0001", remote=True, remote_start_id=7),
                       TxTrigger.AUTHORIZED)
    transactions.start(connector, 1000.0)
    [started] = sent(ctx)
    assert isinstance(started, msg.TransactionStarted)
    assert (started.seq_no, started.trigger, started.remote_start_id) == (
        0, TxTrigger.REMOTE_START, 7)
    transactions.on_start_answer("m1", ctx.answered("m1") or Pending("start"),
                                 msg.TransactionStartResult(AuthorizationInfo(
                                     AuthStatus.ACCEPTED, "GROUP"), None))
    assert remembered == [("CAFE0001", AuthorizationInfo(AuthStatus.ACCEPTED, "GROUP"))]
    transactions.stop(connector, StopReason.LOCAL)
    transactions.finish(connector, 1500.0)
    [ended] = sent(ctx)
    assert isinstance(ended, msg.TransactionEnded)
    assert (ended.seq_no, ended.connector_id, ended.meter_stop_wh) == (1, 1, 1500)
    assert StatusReport(ctx, Outputs(ctx), Faults(ctx)).of(1) is ConnectorStatus.FINISHING
