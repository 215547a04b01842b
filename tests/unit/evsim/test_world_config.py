"""The world TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from evsim.world_config import Address, WorldConfigError, load_world_config, world_config_from_dict

EXAMPLE = Path(__file__).parents[3] / "examples" / "sim-world.toml"


def test_the_example_matches_the_agents_sim_config() -> None:
    config = load_world_config(EXAMPLE)
    assert config.bench == Address("127.0.0.1", 8400)
    assert config.pin_bus == Address("127.0.0.1", 8401)
    assert (config.bus_transport, config.bus) == ("rtu-tcp", Address("127.0.0.1", 8402))
    assert config.reader_link == Path("/tmp/evse-sim/reader")
    (connector,) = config.connectors
    assert (connector.relay_pin, connector.feedback_pin) == (17, 27)
    assert (connector.evse_board_id, connector.meter_id) == (1, 2)
    agent = load_config(EXAMPLE.with_name("sim.toml"))
    assert config.site == agent.charger.id == world_config_from_dict({}).site  # its identity
    assert config.reader == agent.reader.driver == "rdm6300"


def test_the_reader_may_be_a_pn532() -> None:
    assert world_config_from_dict({}).reader == "rdm6300"
    assert world_config_from_dict({"reader": "pn532"}).reader == "pn532"


def test_an_empty_file_is_one_default_connector() -> None:
    (connector,) = world_config_from_dict({}).connectors
    assert connector.id == 1 and connector.initial_energy_kwh == 1234.5


def test_feedback_false_means_not_wired() -> None:
    config = world_config_from_dict({"connectors": [{"id": 1, "feedback_pin": False}]})
    assert config.connectors[0].feedback_pin is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bench": {"listen": "8400"}}, "HOST:PORT"),
        ({"bus": {"transport": "carrier-pigeon"}}, "bus.transport"),
        ({"site": "two words"}, "site"),
        ({"reader": "barcode"}, "reader"),
        ({"connectors": [{"id": 1}, {"id": 1}]}, "unique"),
        ({"connectors": [{"id": 1, "colour": "red"}]}, "colour"),
        ({"connectors": [{"id": 9}]}, "relay_pin"),
        ({"connectors": [{"id": 1, "phases": 2}]}, "phases"),
        ({"connectors": [{"id": 1, "contactor_fault": "melted"}]}, "contactor_fault"),
        ({"connectors": [{"id": 1, "relay_pin": "17"}]}, "relay_pin"),
    ],
)
def test_bad_settings_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(WorldConfigError, match=message):
        world_config_from_dict(data)


def test_pwm_channels_bind_only_a_pwm_pilot() -> None:
    """Eight EVSE-board connectors (the scale benchmark's site) need no PWM channel; a fifth
    PWM pilot has none left (a Pi has pwmchip channels 0..3 here) and is named."""
    from evsim.world_config import ConnectorConfig

    pins = {"relay_pin": 12, "feedback_pin": None}
    assert [ConnectorConfig.for_id(i, **pins).id for i in range(5, 9)] == [5, 6, 7, 8]
    with pytest.raises(WorldConfigError, match=r"connector 5: pwm_channel must be 0\.\.3"):
        ConnectorConfig.for_id(5, pilot="pwm", **pins)
