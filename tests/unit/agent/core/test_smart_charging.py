"""Smart charging in the core (agent/core/smart_charging.py): what the CSMS may install, the
limit in force, the pilot's offer, pauses without ending the transaction, one offer change per
5 s, one timer per schedule boundary, and the local limit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from agent.core import effects as fx
from agent.core import events as ev
from agent.core import messages as msg
from agent.core import smart_charging
from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.core.types import AuthorizationInfo, AuthStatus, LocalLimits
from hal.roles import MeterReading

from .harness import EPOCH, CoreHarness

TAG = "AAAA0001"


def profile(pid: int, purpose: str, periods: list[tuple[int, float]], *, connector: int = 1,
            stack: int = 0, unit: str = "A", duration: int | None = None,
            tx: int | None = None, start: datetime | None = None,
            kind: str = "Absolute", recurrency: str | None = None) -> ChargingProfile:
    schedule = ChargingSchedule(unit, tuple(SchedulePeriod(s, lim) for s, lim in periods),
                                duration, start)
    return ChargingProfile(pid, connector, stack, purpose, kind, schedule, recurrency,
                           transaction_id=tx)


def set_profile(h: CoreHarness, p: ChargingProfile) -> str:
    result = reply(h, msg.CsmsSetChargingProfile(p))
    assert isinstance(result, msg.StatusResult)
    return result.status


def reply(h: CoreHarness, request: msg.CsmsRequest) -> msg.CsmsResponse:
    out = h.feed(ev.CsmsCommand(request))
    return next(e.response for e in out if isinstance(e, fx.Reply))


def charging(**seed: Any) -> CoreHarness:
    h = CoreHarness(**seed)
    h.boot()
    h.pilot("B")
    h.card(TAG)
    h.accept_authorize()
    h.accept_start(transaction_id=1)
    h.pilot("C")
    assert h.contactor(1)
    return h


def offers(h: CoreHarness) -> list[float]:
    return [e.amps for e in h.effects if isinstance(e, fx.SetOfferedCurrent)]


def composite(h: CoreHarness, duration: int = 400, unit: str | None = "A",
              cid: int = 1) -> msg.CompositeScheduleResult:
    result = reply(h, msg.CsmsGetCompositeSchedule(cid, duration, unit))
    assert isinstance(result, msg.CompositeScheduleResult)
    return result


def limits(result: msg.CompositeScheduleResult) -> list[tuple[int, float]]:
    return [(p.start_period, p.limit) for p in result.periods]


# --- what may be installed ---------------------------------------------------------------


def test_tc_058_1_tx_profile_without_a_transaction_is_rejected() -> None:
    h = CoreHarness()
    h.boot()
    assert set_profile(h, profile(1, "TxProfile", [(0, 10)])) == "Rejected"


def test_tc_058_2_tx_profile_of_another_transaction_is_rejected() -> None:
    h = charging()
    assert set_profile(h, profile(1, "TxProfile", [(0, 10)], tx=99)) == "Rejected"
    assert set_profile(h, profile(1, "TxProfile", [(0, 10)], tx=1)) == "Accepted"


def test_charge_point_max_only_on_connector_zero() -> None:
    h = CoreHarness()
    h.boot()
    assert set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 10)])) == "Rejected"
    assert set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 10)], connector=0)) \
        == "Accepted"
    assert set_profile(h, profile(2, "TxDefaultProfile", [(0, 10)], connector=5)) == "Rejected"


def test_limits_of_the_configuration_keys() -> None:
    h = CoreHarness()
    h.boot()
    assert set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)], stack=9)) == "Rejected"
    many = [(i * 10, 10.0) for i in range(25)]
    assert set_profile(h, profile(1, "TxDefaultProfile", many)) == "Rejected"
    for pid in range(16):
        assert set_profile(h, profile(pid, "TxDefaultProfile", [(0, 10)], stack=pid % 9,
                                      connector=pid // 9)) == "Accepted"
    assert set_profile(h, profile(99, "TxDefaultProfile", [(0, 10)], stack=8,
                                  connector=1)) == "Rejected"  # MaxChargingProfilesInstalled
    assert set_profile(h, profile(3, "TxDefaultProfile", [(0, 7)], stack=3)) == "Accepted"


def test_same_purpose_stack_and_connector_replaces() -> None:
    h = CoreHarness()
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)]))
    set_profile(h, profile(2, "TxDefaultProfile", [(0, 8)]))
    assert [p.profile_id for p in h.station.smart_charging.profiles] == [2]
    saved = [e for e in h.effects if isinstance(e, fx.SaveChargingProfiles)]
    assert [p.profile_id for p in saved[-1].profiles] == [2]


def test_tc_067_clear_by_id_purpose_stack_and_all() -> None:
    h = CoreHarness()
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 6), (60, 8), (200, 10)], stack=1))
    set_profile(h, profile(2, "TxDefaultProfile", [(0, 7), (100, 9)]))
    set_profile(h, profile(3, "ChargePointMaxProfile", [(0, 11), (200, 12)], connector=0))
    assert limits(composite(h, 350)) == [(0, 6), (60, 8), (200, 10)]
    assert reply(h, msg.CsmsClearChargingProfile(profile_id=1)) == msg.StatusResult("Accepted")
    assert limits(composite(h, 350)) == [(0, 7), (100, 9)]
    cleared = reply(h, msg.CsmsClearChargingProfile(purpose="TxDefaultProfile", stack_level=0))
    assert cleared == msg.StatusResult("Accepted")
    assert limits(composite(h, 350)) == [(0, 11), (200, 12)]
    assert reply(h, msg.CsmsClearChargingProfile()) == msg.StatusResult("Accepted")
    assert limits(composite(h, 350)) == [(0, 16)]  # the hardware's maximum only
    assert reply(h, msg.CsmsClearChargingProfile()) == msg.StatusResult("Unknown")


def test_composite_in_watts_and_unknown_connector() -> None:
    h = CoreHarness()
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 6)]))
    assert limits(composite(h, 60, "W")) == [(0, 6 * 230 * 3)]
    assert composite(h, 60, "A", cid=7).status == "Rejected"
    assert composite(h, 60, None).unit == "A"


# --- from the limit to the pilot ---------------------------------------------------------


def test_tc_082_tx_default_applies_to_the_running_transaction() -> None:
    h = charging()
    assert offers(h)[-1] == 16
    assert set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)], connector=0)) == "Accepted"
    h.advance(5)  # one change per 5 s: the first change after the start may go at once
    assert offers(h)[-1] == 10
    connector = h.station.connectors[1]
    assert (connector.limit_amps, connector.limit_source) == (10, "TxDefaultProfile")


def test_tx_profile_overrides_and_ends_with_the_transaction() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 8)]))
    set_profile(h, profile(2, "TxProfile", [(0, 12)], tx=1))
    h.advance(6)
    assert offers(h)[-1] == 12
    h.pilot("B")
    h.pilot("A")  # unplugged: the transaction ends
    h.answer(h.last(msg.TransactionEnded), msg.TransactionEndResult(None))
    assert [p.profile_id for p in h.station.smart_charging.profiles] == [1]


def test_zero_amps_pauses_without_ending_and_resumes() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 0)]))
    assert offers(h)[-1] == 0  # "no charging" goes out at once
    assert h.statuses(1)[-1] == "SuspendedEVSE"
    assert h.contactor(1)  # the EV gets its 6 s to stop drawing (IEC 61851-1 seq. 10.2)
    h.pilot("B")  # the EV stops
    assert not h.contactor(1)
    assert h.statuses(1)[-1] == "SuspendedEVSE"
    assert h.station.connectors[1].transaction is not None
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 16)]))
    assert offers(h)[-1] == 0, "a resume within 5 s of the pause waits"
    h.advance(5)
    assert offers(h)[-1] == 16
    h.pilot("C")
    assert h.contactor(1) and h.statuses(1)[-1] == "Charging"
    assert not h.sent(msg.TransactionEnded)


def test_paused_ev_that_keeps_drawing_is_cut_after_six_seconds() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 5)]))  # below 6 A: no charging
    assert offers(h)[-1] == 0 and h.contactor(1)
    h.advance(6)
    assert not h.contactor(1)
    assert h.station.connectors[1].transaction is not None


def test_one_offer_change_per_five_seconds() -> None:
    h = charging()
    h.advance(10)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)]))
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 12)]))
    h.advance(4.9)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 14)]))
    assert offers(h)[-2:] == [16, 10]
    h.advance(0.2)
    assert offers(h)[-2:] == [10, 14]


def test_one_timer_at_each_schedule_boundary() -> None:
    h = charging()
    h.advance(10)
    start = EPOCH + timedelta(seconds=10)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10), (60, 8), (120, 16)], start=start))
    assert h.timers["schedule"] == 70
    h.advance(59)
    assert offers(h)[-1] == 10
    h.advance(1)
    assert offers(h)[-1] == 8 and h.timers["schedule"] == 130
    h.advance(60)
    assert offers(h)[-1] == 16 and "schedule" not in h.timers


def test_watts_use_the_phases_the_ev_draws() -> None:
    h = charging()
    h.feed(ev.MeterSampled(1, MeterReading(1000, 2000, (230, 230, 230), (9.0, 0.1, 0.0))))
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 2300)], unit="W"))
    assert h.station.connectors[1].limit_amps == 10  # one phase drawn: 2300 W / 230 V
    h.feed(ev.MeterSampled(1, MeterReading(1000, 2000, (230, 230, 230), (9.0, 9.0, 9.0))))
    assert h.station.connectors[1].limit_amps < 6  # three phases: 3.3 A, a pause


def test_remote_start_with_a_tx_profile() -> None:
    h = CoreHarness(AuthorizeRemoteTxRequests=False)
    h.boot()
    h.pilot("B")
    bad = profile(1, "TxDefaultProfile", [(0, 10)])
    refused = reply(h, msg.CsmsRemoteStart(TAG, 1, charging_profile=bad))
    assert refused.status.value == "Rejected"  # type: ignore[union-attr]  # TC_060
    good = profile(2, "TxProfile", [(0, 10)])
    accepted = reply(h, msg.CsmsRemoteStart(TAG, 1, charging_profile=good))
    assert accepted.status.value == "Accepted"  # type: ignore[union-attr]  # TC_059
    h.accept_start(transaction_id=5)
    h.pilot("C")
    assert offers(h)[-1] == 10
    assert limits(composite(h, 60)) == [(0, 10)]


def test_local_limit_and_its_source() -> None:
    h = charging()
    h.feed(ev.LocalLimitSet(1, 8, "hems"))
    h.advance(5)
    connector = h.station.connectors[1]
    assert (offers(h)[-1], connector.limit_source) == (8, "local:hems")
    h.feed(ev.LocalLimitSet(1, 0, "cli"))
    assert offers(h)[-1] == 0 and h.statuses(1)[-1] == "SuspendedEVSE"
    h.feed(ev.LocalLimitSet(1, None, "cli"))
    h.advance(5)
    assert (offers(h)[-1], connector.limit_source) == (16, "hardware")


def local_saves(h: CoreHarness) -> list[fx.SaveLocalLimits]:
    return [e for e in h.effects if isinstance(e, fx.SaveLocalLimits)]


def test_every_local_limit_set_or_cleared_is_saved() -> None:
    """The core hands each one to the store, a repeat too (the store skips what it holds)."""
    h = CoreHarness()
    h.boot()
    h.feed(ev.LocalLimitSet(1, 10, "hems"))
    h.feed(ev.LocalLimitSet(1, 10, "hems"))  # a home energy manager repeating itself
    h.feed(ev.LocalLimitSet(1, 0, "app"))
    h.feed(ev.LocalLimitSet(1, None, "app"))
    assert local_saves(h) == [
        fx.SaveLocalLimits(1, LocalLimits((10.0, "hems"))),
        fx.SaveLocalLimits(1, LocalLimits((10.0, "hems"))),
        fx.SaveLocalLimits(1, LocalLimits((0.0, "app"))),
        fx.SaveLocalLimits(1, LocalLimits()),
    ]


@pytest.mark.parametrize(("amps", "offer", "state"), [(10, 10, "Charging"),
                                                      (0, 0, "SuspendedEVSE")])
def test_a_local_limit_survives_a_restart(amps: float, offer: float, state: str) -> None:
    """What a restart keeps (the last SaveLocalLimits) is in force from Started on, before
    any session: a cap stays a cap, a pause stays a pause."""
    h = CoreHarness()
    h.boot()
    h.feed(ev.LocalLimitSet(1, amps, "hems"))
    again = CoreHarness()
    again.station.restore_local_limits({1: local_saves(h)[-1].limits})
    again.feed(ev.Started())
    connector = again.station.connectors[1]
    assert (connector.limit_amps, connector.limit_source) == (amps, "local:hems")
    again.boot()
    again.pilot("B")
    again.card(TAG)
    again.accept_authorize()
    again.accept_start(transaction_id=2)
    again.pilot("C")
    assert offers(again)[-1] == offer and again.statuses(1)[-1] == state
    assert again.contactor(1) is (offer > 0)
    assert not local_saves(again)  # restoring writes nothing


def test_a_kept_local_limit_of_a_connector_no_longer_configured_is_left_out() -> None:
    h = CoreHarness()
    h.station.restore_local_limits({2: LocalLimits((8.0, "hems"))})
    h.boot()
    assert h.station.connectors[1].limit_source == "hardware"


def test_current_and_power_offered_in_samples() -> None:
    h = charging(MeterValuesSampledData="Current.Offered,Power.Offered",
                 MeterValueSampleInterval=10)
    h.advance(10)
    sample = h.last(msg.TransactionUpdated).req
    assert isinstance(sample, msg.TransactionUpdated)
    values = {v.measurand: v.value for v in sample.samples[0].values}
    assert values == {"Current.Offered": 16, "Power.Offered": 16 * 230 * 3}


def test_profiles_survive_a_restart() -> None:
    h = CoreHarness()
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)]))
    saved = [e for e in h.effects if isinstance(e, fx.SaveChargingProfiles)][-1]
    again = CoreHarness()
    again.station.restore_charging_profiles(list(saved.profiles))
    again.boot()
    assert limits(composite(again, 60)) == [(0, 10)]


@pytest.mark.parametrize("later", [120, 5])  # past ConnectionTimeOut; well within it
def test_a_remote_start_profile_never_reaches_a_later_transaction(later: int) -> None:
    """A remote start whose tag the CSMS refused: another card's transaction does not
    inherit its TxProfile, even within ConnectionTimeOut."""
    h = CoreHarness()  # AuthorizeRemoteTxRequests: the CSMS refuses the tag
    h.boot()
    accepted = reply(h, msg.CsmsRemoteStart(TAG, 1, charging_profile=profile(
        2, "TxProfile", [(0, 7)])))
    assert accepted.status.value == "Accepted"  # type: ignore[union-attr]
    h.answer(h.last(msg.AuthorizationRequest), msg.AuthorizationResult(
        AuthorizationInfo(AuthStatus.INVALID)))
    h.advance(later)
    h.pilot("B")
    h.card("BBBB0002")
    h.accept_authorize()
    h.accept_start(transaction_id=9)
    h.pilot("C")
    assert offers(h)[-1] == 16
    assert h.station.smart_charging.profiles == ()


def test_a_one_phase_connector_converts_with_one_phase() -> None:
    h = CoreHarness()
    h.station.connectors[1].phases = 1
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 2300)], unit="W"))
    assert h.station.connectors[1].limit_amps == 10
    assert limits(composite(h, 60, "W")) == [(0, 2300)]


def test_tx_profiles_end_with_a_restart() -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)]))
    set_profile(h, profile(2, "TxProfile", [(0, 8)], tx=1))
    saved = [e for e in h.effects if isinstance(e, fx.SaveChargingProfiles)][-1]
    again = CoreHarness()
    again.station.restore_charging_profiles(list(saved.profiles))
    again.boot()  # the transaction did not survive (recovery ended it)
    assert [p.profile_id for p in again.station.smart_charging.profiles] == [1]


def test_the_contactor_closes_only_under_an_offer() -> None:
    """A resume within 5 s of the pause waits for its offer; the contactor waits with it."""
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 0)]))
    h.pilot("B")
    assert not h.contactor(1)
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 16)]))
    h.pilot("C")
    assert offers(h)[-1] == 0 and not h.contactor(1)
    assert h.statuses(1)[-1] == "SuspendedEVSE"
    h.advance(5)
    assert offers(h)[-1] == 16 and h.contactor(1)
    assert h.statuses(1)[-1] == "Charging"
    kinds = [type(e).__name__ for e in h.effects[-6:]
             if isinstance(e, fx.SetOfferedCurrent | fx.SetContactor)]
    assert kinds == ["SetOfferedCurrent", "SetContactor"]  # the offer first, then the contactor


def test_composite_of_the_charger() -> None:
    h = CoreHarness(connectors=2)
    h.boot()
    assert limits(composite(h, 60, cid=0)) == [(0, 32)]  # both connectors' maximum
    set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 20), (30, 40)], connector=0))
    set_profile(h, profile(2, "TxDefaultProfile", [(0, 6)], connector=0))
    assert limits(composite(h, 60, cid=0)) == [(0, 20), (30, 32)]


def test_a_profile_the_store_refused_is_taken_back() -> None:
    h = charging()
    assert set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)])) == "Accepted"
    assert set_profile(h, profile(2, "TxDefaultProfile", [(0, 8)], stack=1)) == "Accepted"
    assert h.station.connectors[1].limit_amps == 8
    h.feed(ev.ChargingProfilesNotSaved())  # the runtime's word: the save failed
    assert [p.profile_id for p in h.station.smart_charging.profiles] == [1]
    assert h.station.connectors[1].limit_amps == 10


def test_min_charging_rate_is_carried_into_the_composite_and_not_acted_on() -> None:
    h = charging()
    schedule = ChargingSchedule("A", (SchedulePeriod(0, 10),), min_charging_rate=8.0)
    set_profile(h, ChargingProfile(1, 1, 0, "TxDefaultProfile", "Absolute", schedule))
    assert composite(h).min_charging_rate == 8.0
    assert composite(h, unit="W").min_charging_rate == 8.0 * 230 * 3
    h.advance(10)  # one offer change per 5 s
    assert h.station.connectors[1].offered == 10  # the offer is the limit, as without it
    low = ChargingSchedule("A", (SchedulePeriod(0, 7),), min_charging_rate=8.0)
    set_profile(h, ChargingProfile(1, 1, 0, "TxDefaultProfile", "Absolute", low))
    h.advance(10)
    assert h.station.connectors[1].offered == 7  # below minChargingRate: still offered
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)]))
    assert composite(h).min_charging_rate is None


def test_a_huge_composite_duration_is_capped() -> None:
    """A duration of 10**12 s overflowed a datetime; 2**31-1 s of a Recurring profile took
    seconds: the charger computes at most 7 days and says so in the answer's duration."""
    h = charging()
    assert set_profile(h, profile(1, "TxDefaultProfile", [(0, 10), (3600, 8)],
                                  kind="Recurring", recurrency="Daily", start=EPOCH)) == "Accepted"
    for asked in (10**12, 2**31 - 1):
        result = composite(h, asked)
        assert result.status == "Accepted" and result.duration == 7 * 86400
        assert len(result.periods) == 14  # two a day for 7 days
    assert composite(h, 400).duration == 400


def test_a_composite_with_too_many_periods_ends_where_they_stop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10), (100, 8), (200, 10), (300, 8)]))
    monkeypatch.setattr(smart_charging, "COMPOSITE_MAX_PERIODS", 2)
    result = composite(h, 400)
    assert limits(result) == [(0, 10), (100, 8)] and result.duration == 200


def break_on_profile(monkeypatch: pytest.MonkeyPatch, profile_id: int) -> None:
    """The limit arithmetic raises for any stack holding the profile ``profile_id``."""
    real = smart_charging.limit_at

    def broken(profiles: Any, *args: Any) -> Any:
        if any(p.profile_id == profile_id for p in profiles):
            raise ArithmeticError("a profile the arithmetic cannot take")
        return real(profiles, *args)

    monkeypatch.setattr(smart_charging, "limit_at", broken)


def test_a_fault_in_the_limit_keeps_the_contactor_decision_and_the_reply(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A profile whose arithmetic raises: the reply, the contactor and the status still go
    out, the previous limit stays, the fault is logged once."""
    h = charging()
    break_on_profile(monkeypatch, 66)
    assert set_profile(h, profile(66, "TxDefaultProfile", [(0, 8)])) == "Accepted"
    assert h.station.connectors[1].limit_amps == 16  # the previous limit
    h.pilot("B")  # the EV stops drawing: the contactor opens all the same
    assert not h.contactor(1) and h.statuses(1)[-1] == "SuspendedEV"
    h.pilot("A")
    assert h.sent(msg.TransactionEnded)
    faults = [r for r in caplog.records if "limit computation failed" in r.getMessage()]
    assert len(faults) == 1 and faults[0].exc_info is not None


def test_the_schedule_timer_looks_again_every_hour() -> None:
    """The timer runs on the monotonic clock: after a step of the wall clock (NTP on a Pi
    without RTC) a boundary is applied within the hour, not an hour late."""
    h = charging()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10), (3 * 3600, 8)], start=EPOCH))
    assert h.timers["schedule"] == 3600
    h.advance(5)
    assert offers(h)[-1] == 10
    h.wall_step = 3600.0  # the wall clock jumps an hour ahead
    h.advance(3600 * 2 - 5)  # wall clock 3 h: the boundary
    assert offers(h)[-1] == 8
    assert "schedule" not in h.timers


def test_a_remote_start_profile_waits_for_its_authorization_and_plug_in() -> None:
    h = CoreHarness()
    h.boot()
    reply(h, msg.CsmsRemoteStart(TAG, 1, charging_profile=profile(2, "TxProfile", [(0, 7)])))
    h.advance(1)
    h.accept_authorize()  # granted: it waits for the plug-in
    h.advance(10)
    h.pilot("B")
    h.accept_start(transaction_id=4)
    h.pilot("C")
    assert offers(h)[-1] == 7
    assert [p.transaction_id for p in h.station.smart_charging.profiles] == [None]


def start_on(h: CoreHarness, connector_id: int, id_tag: str) -> None:
    h.pilot("B", connector_id)
    h.card(id_tag)
    h.accept_authorize()
    h.accept_start(transaction_id=connector_id)
    h.pilot("C", connector_id)


def test_the_charge_point_max_profile_is_shared_by_the_connectors() -> None:
    """OCPP 1.6 3.13.1: the ChargePointMaxProfile limits the current shared by all
    connectors: equal shares, never below 6 A to more than fit (the later ones pause)."""
    h = CoreHarness(connectors=2)
    h.boot()
    one, two = h.station.connectors[1], h.station.connectors[2]
    set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 20)], connector=0))
    start_on(h, 1, TAG)
    assert (one.limit_amps, two.limit_amps) == (16, 16)  # alone: the connector's hardware
    h.advance(10)
    start_on(h, 2, "BBBB0002")
    assert (one.limit_amps, two.limit_amps) == (10, 10)
    assert one.limit_source == two.limit_source == "ChargePointMaxProfile"
    set_profile(h, profile(2, "TxDefaultProfile", [(0, 8)], connector=1))
    assert (one.limit_amps, two.limit_amps) == (8, 10)  # the connector's own limit too
    set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 10)], connector=0))
    assert (one.limit_amps, two.limit_amps) == (8, 0)  # 5 A each would not charge
    h.advance(5)
    assert h.statuses(2)[-1] == "SuspendedEVSE" and h.statuses(1)[-1] == "Charging"
    assert limits(composite(h, 60, cid=0)) == [(0, 10)]  # the charger's own limit
    h.pilot("B", 1)
    h.pilot("A", 1)  # the first transaction ends: the second has the whole limit
    assert two.limit_amps == 10


def test_a_fault_on_one_connector_keeps_every_previous_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = CoreHarness(connectors=2)
    h.boot()
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 10)], connector=1))
    break_on_profile(monkeypatch, 66)
    set_profile(h, profile(66, "TxDefaultProfile", [(0, 8)], connector=2))
    set_profile(h, profile(1, "TxDefaultProfile", [(0, 12)], connector=1))
    assert [c.limit_amps for c in h.station.connectors.values()] == [10, 16]
    monkeypatch.undo()
    h.feed(ev.LinkUp())
    assert [c.limit_amps for c in h.station.connectors.values()] == [12, 8]


def test_a_station_limit_in_watts_is_shared_as_power() -> None:
    h = CoreHarness(connectors=2)
    h.station.connectors[2].phases = 1
    h.boot()
    set_profile(h, profile(1, "ChargePointMaxProfile", [(0, 2 * 230 * 3 * 8)], unit="W",
                           connector=0))
    start_on(h, 1, TAG)
    start_on(h, 2, "BBBB0002")
    # 5520 W each: 8 A on three phases, 16 A (the hardware's maximum) on one
    assert [c.limit_amps for c in h.station.connectors.values()] == [8, 16]
