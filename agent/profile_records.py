"""Charging profiles as JSON records for the state store (schema 5), and back."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from agent.core.schedule import ChargingProfile, ChargingSchedule, SchedulePeriod


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def to_json(profile: ChargingProfile) -> str:
    return json.dumps(asdict(profile), default=lambda m: m.isoformat(), sort_keys=True)


def from_json(text: str) -> ChargingProfile:
    raw: dict[str, Any] = json.loads(text)
    sched = raw["schedule"]
    schedule = ChargingSchedule(
        sched["unit"],
        tuple(SchedulePeriod(int(p["start_period"]), float(p["limit"]), p["number_phases"])
              for p in sched["periods"]),
        sched["duration"], _time(sched["start_schedule"]), sched["min_charging_rate"])
    return ChargingProfile(
        int(raw["profile_id"]), int(raw["connector_id"]), int(raw["stack_level"]),
        raw["purpose"], raw["kind"], schedule, raw["recurrency"], _time(raw["valid_from"]),
        _time(raw["valid_to"]), raw["transaction_id"])
