"""The composition root's use of the store: settings seeded from it, transaction refs after it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.app import Agent, id_source, settings_from
from agent.config import RECOVERY_POLICIES, Config, ConfigError, load_config, parse_config
from agent.recovery import RecoveryPolicy
from agent.store import Store

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "examples" / "sim.toml")  # heartbeat_interval = 60


def test_values_the_csms_set_win_over_the_file(config: Config, tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.save_setting("HeartbeatInterval", "900")
        settings = settings_from(config, store)
    assert settings.int("HeartbeatInterval") == 900
    assert settings.int("MeterValueSampleInterval") == 10  # from the file


def test_unknown_invalid_and_read_only_stored_keys_are_logged_and_ignored(
    config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store.open(tmp_path) as store:
        store.save_setting("NoSuchKey", "1")
        store.save_setting("HeartbeatInterval", "soon")
        store.save_setting("NumberOfConnectors", "7")
        with caplog.at_level(logging.WARNING):
            settings = settings_from(config, store)
    assert settings.int("HeartbeatInterval") == 60 and settings.int("NumberOfConnectors") == 1
    for key in ("NoSuchKey", "HeartbeatInterval", "NumberOfConnectors"):
        assert f"ignoring configuration {key}" in caplog.text


def test_transaction_refs_continue_after_the_highest_in_the_store(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert id_source(store).next_tx_ref() == 1
        store.tx_open(41, 1, "CAFE0001", 0, datetime(2026, 1, 1, tzinfo=UTC))
        ids = id_source(store)
        assert [ids.next_tx_ref(), ids.next_tx_ref()] == [42, 43]


def test_websocket_ping_interval_is_seeded_from_the_csms_table(config: Config,
                                                               tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert settings_from(config, store).int("WebSocketPingInterval") == \
            config.csms.ping_interval
        store.save_setting("WebSocketPingInterval", "7")
        assert settings_from(config, store).int("WebSocketPingInterval") == 7


def test_the_recovery_policy_comes_from_the_recovery_table(config: Config) -> None:
    assert config.recovery.policy == "end"  # the default: examples/sim.toml has no [recovery]
    assert Agent(config).policy is RecoveryPolicy.END
    assert Agent(config, policy="end").policy is RecoveryPolicy.END


def test_the_schema_allows_exactly_the_policies_recovery_knows() -> None:
    assert set(RECOVERY_POLICIES) == {policy.value for policy in RecoveryPolicy}


def test_an_unknown_recovery_policy_is_refused_with_the_allowed_ones() -> None:
    text = (ROOT / "examples" / "sim.toml").read_text() + '\n[recovery]\npolicy = "resume"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "sim.toml")
    assert caught.value.problems == ("recovery.policy: 'resume' is not allowed; "
                                     "choose one of: end",)
