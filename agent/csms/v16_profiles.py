"""OCPP 1.6 charging profiles (section 7.8, ChargingProfile) to and from the core's values.

The ``ocpp`` library hands payloads over with snake_case keys (``charging_profile_id``,
``charging_schedule_period``, ...) and turns the answers' keys back into camelCase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp.v16 import call_result
from ocpp.v16.enums import (
    Action,
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    GetCompositeScheduleStatus,
)

from agent.core import messages as msg
from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod
from agent.csms.adapter import CommandHandler, on, parse_timestamp, timestamp

log = logging.getLogger(__name__)


class BadProfile(ValueError):
    """A profile the schema lets through but the charger cannot read: answered Rejected."""


def _moment(text: str | None, field: str) -> datetime | None:
    """A validFrom, validTo or startSchedule: absent is None, anything else must be a
    date-time (the 1.6 schema's format, which the library does not check): a value that is
    not one is refused, never taken as absent (a profile then in force at the wrong time)."""
    if text is None:
        return None
    moment = parse_timestamp(text)
    if moment is None:
        raise BadProfile(f"{field} is not a date-time: {text!r}")
    return moment


def profile_from_ocpp(raw: dict[str, Any], connector_id: int) -> ChargingProfile:
    """The core's profile for a ``csChargingProfiles`` (or RemoteStart ``chargingProfile``);
    raises :class:`BadProfile` for a timestamp that is not a date-time."""
    sched = raw["charging_schedule"]
    periods = tuple(
        SchedulePeriod(int(p["start_period"]), float(p["limit"]), p.get("number_phases"))
        for p in sched["charging_schedule_period"])
    rate = sched.get("min_charging_rate")  # the library parses decimals as Decimal
    schedule = ChargingSchedule(sched["charging_rate_unit"], periods, sched.get("duration"),
                                _moment(sched.get("start_schedule"), "startSchedule"),
                                None if rate is None else float(rate))
    return ChargingProfile(
        profile_id=int(raw["charging_profile_id"]), connector_id=connector_id,
        stack_level=int(raw["stack_level"]), purpose=raw["charging_profile_purpose"],
        kind=raw["charging_profile_kind"], schedule=schedule,
        recurrency=raw.get("recurrency_kind"),
        valid_from=_moment(raw.get("valid_from"), "validFrom"),
        valid_to=_moment(raw.get("valid_to"), "validTo"), transaction_id=raw.get("transaction_id"))


def _limit(value: float) -> float:
    """1.6 limits are decimals with one digit after the point (section 7.9)."""
    return round(value, 1)


def composite_to_ocpp(result: msg.CompositeScheduleResult) -> dict[str, Any]:
    """The keyword arguments of ``call_result.GetCompositeSchedule`` for an Accepted result."""
    periods: list[dict[str, Any]] = []
    for period in result.periods:
        entry: dict[str, Any] = {"start_period": period.start_period,
                                 "limit": _limit(period.limit)}
        if period.number_phases is not None:
            entry["number_phases"] = period.number_phases
        periods.append(entry)
    assert result.start is not None
    schedule: dict[str, Any] = {
        "duration": result.duration,
        "start_schedule": timestamp(result.start),
        "charging_rate_unit": result.unit,
        "charging_schedule_period": periods,
    }
    if result.min_charging_rate is not None:  # 1.6 section 7.13, optional
        schedule["min_charging_rate"] = _limit(result.min_charging_rate)
    return {
        "connector_id": result.connector_id,
        "schedule_start": timestamp(result.start),
        "charging_schedule": schedule,
    }


class SmartChargingCalls:
    """The SmartCharging profile's calls of the 1.6 session (a mixin of
    :class:`agent.csms.v16.ChargePoint16`, whose ``_commands`` hands them to the core)."""

    _commands: CommandHandler
    _status: Callable[[msg.AnyCsmsRequest], str]  # ChargePoint16._status

    @on(Action.set_charging_profile)
    def _on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any],
                                 **_: Any) -> Any:
        try:
            profile = profile_from_ocpp(cs_charging_profiles, connector_id)
        except BadProfile as error:
            log.info("charging profile refused: %s", error)
            return call_result.SetChargingProfile(ChargingProfileStatus.rejected)
        status = self._status(msg.CsmsSetChargingProfile(profile))
        return call_result.SetChargingProfile(ChargingProfileStatus(status))

    @on(Action.clear_charging_profile)
    def _on_clear_charging_profile(self, **fields: Any) -> Any:
        status = self._status(msg.CsmsClearChargingProfile(
            fields.get("id"), fields.get("connector_id"), fields.get("charging_profile_purpose"),
            fields.get("stack_level")))
        return call_result.ClearChargingProfile(ClearChargingProfileStatus(status))

    @on(Action.get_composite_schedule)
    def _on_get_composite_schedule(self, connector_id: int, duration: int,
                                   charging_rate_unit: str | None = None, **_: Any) -> Any:
        response = self._commands(msg.CsmsGetCompositeSchedule(connector_id, duration,
                                                               charging_rate_unit))
        assert isinstance(response, msg.CompositeScheduleResult)
        if response.status != "Accepted":
            return call_result.GetCompositeSchedule(GetCompositeScheduleStatus.rejected)
        return call_result.GetCompositeSchedule(GetCompositeScheduleStatus.accepted,
                                                **composite_to_ocpp(response))
