"""agent.config: the examples load; every kind of mistake is named with its key and the fix."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import cli, config
from agent.config import ConfigError, describe_schema, load_config, parse_config
from agent.core.settings import core_keys

ROOT = Path(__file__).resolve().parents[3]
PI = ROOT / "examples" / "raspberry-pi.toml"
DELETE = object()

Doc = dict[str, Any]


def connector(number: int, pin: int, pilot_id: int, meter_id: int) -> Doc:
    return {
        "id": number,
        "contactor": {"pin": pin},
        "pilot": {"bus": "rs485", "device_id": pilot_id},
        "meter": {"driver": "sdm630", "bus": "rs485", "device_id": meter_id},
    }


BASE: Doc = {
    "charger": {"id": "CP-1"},
    "csms": {"url": "ws://localhost:9000/ocpp"},
    "bus": [{"name": "rs485", "port": "/dev/ttyUSB0"}],
    "connector": [connector(1, pin=17, pilot_id=1, meter_id=2)],
}


def _literal(value: object) -> str:
    return json.dumps(value)  # JSON scalars are valid TOML for what these tests use


def _emit(lines: list[str], prefix: str, table: Doc) -> None:
    subs = {name: value for name, value in table.items() if isinstance(value, dict)}
    for name, value in table.items():
        if name not in subs and value is not DELETE:
            lines.append(f"{name} = {_literal(value)}")
    for name, value in subs.items():
        lines.append(f"[{prefix}.{name}]")
        _emit(lines, f"{prefix}.{name}", value)


def render(doc: Doc) -> str:
    """A small TOML writer: tables, arrays of tables with sub-tables, scalars."""
    lines: list[str] = []
    for name, section in doc.items():
        for item in section if isinstance(section, list) else [section]:
            lines.append(f"[[{name}]]" if isinstance(section, list) else f"[{name}]")
            _emit(lines, name, item)
    return "\n".join(lines) + "\n"


def problems_of(edit: Callable[[Doc], None]) -> list[str]:
    doc = copy.deepcopy(BASE)
    edit(doc)
    with pytest.raises(ConfigError) as caught:
        parse_config(render(doc))
    return list(caught.value.problems)


def only_problem(edit: Callable[[Doc], None]) -> str:
    problems = problems_of(edit)
    assert len(problems) == 1, problems
    return problems[0]


# --- valid files -----------------------------------------------------------------------------


def made_real(text: str) -> str:
    """The starter configuration with the CSMS's real URL and key filled in."""
    return (text.replace("wss://csms.example.com/ocpp", "wss://csms.acme.test/ocpp")
            .replace("REPLACE-with-the-key-from-your-CSMS", "s3cret-key-0001"))


def test_sim_example_loads() -> None:
    assert load_config(ROOT / "examples" / "sim.toml").connectors[0].id == 1


def test_the_starter_config_is_refused_by_key_until_it_is_made_real() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(PI)
    assert caught.value.problems == (
        "csms.url: 'wss://csms.example.com/ocpp' is still the example; set your CSMS's URL",
        "csms.password: is still the starter placeholder; set the AuthorizationKey your CSMS "
        "gave this charger",
    )
    assert parse_config(made_real(PI.read_text())).connectors[0].id == 1


@pytest.mark.parametrize("url", ["wss://example.com/ocpp", "ws://CSMS.Example.Org:9000/x"])
def test_any_example_domain_is_a_placeholder(url: str) -> None:
    doc = copy.deepcopy(BASE)
    doc["csms"]["url"] = url
    with pytest.raises(ConfigError, match=r"^<string>: csms\.url: .* is still the example"):
        parse_config(render(doc))


def test_sim_example_values() -> None:
    sim = load_config(ROOT / "examples" / "sim.toml")
    assert sim.charger.id == "SIM-0001"
    assert sim.charger.state_dir == ROOT / "examples" / "state"  # beside the file
    assert sim.csms_endpoint == "ws://127.0.0.1:9000/ocpp/SIM-0001"
    assert sim.gpio.pin_factory == "evsim"
    assert sim.bus("rs485").port == "socket://127.0.0.1:8402"
    (only,) = sim.connectors
    assert (only.contactor.pin, only.contactor.feedback_pin) == (17, 27)
    assert (only.pilot.driver, only.pilot.device_id) == ("evse-board", 1)
    assert (only.meter.driver, only.meter.device_id) == ("sdm630", 2)
    assert (sim.reader.driver, sim.reader.port) == ("rdm6300", "/tmp/evse-sim/reader")
    assert (sim.ocpp.meter_value_sample_interval, sim.ocpp.heartbeat_interval) == (10, 60)


def test_pi_example_is_active_low_over_wss_with_password() -> None:
    pi = parse_config(made_real(PI.read_text()))
    assert pi.csms.url.startswith("wss://") and pi.csms.password
    assert pi.connectors[0].contactor.active_high is False
    assert pi.csms.password not in repr(pi)


def test_defaults_fill_a_minimal_file() -> None:
    loaded = parse_config(render(BASE))
    assert loaded.charger.vendor == "evse-agent"
    assert loaded.charger.state_dir == Path("/var/lib/evse-agent")
    assert loaded.csms.call_timeout == 30.0 and isinstance(loaded.csms.call_timeout, float)
    assert loaded.csms.password is None
    assert loaded.ocpp.meter_values_sampled_data == (
        "Energy.Active.Import.Register",
        "Power.Active.Import",
    )
    assert loaded.authorization.mode == "ocpp"
    assert loaded.gpio.pin_factory is None
    assert loaded.buses[0].type == "rtu" and loaded.buses[0].baudrate == 9600
    assert loaded.connectors[0].max_current == 16 and loaded.connectors[0].phases == 3
    assert loaded.connectors[0].contactor.feedback_pin is None
    assert loaded.reader.driver == "none" and loaded.log.level == "INFO"


def test_config_is_frozen() -> None:
    loaded = parse_config(render(BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.charger.id = "other"  # type: ignore[misc]


def test_an_integer_is_accepted_where_a_float_is_expected() -> None:
    doc = copy.deepcopy(BASE)
    doc["csms"]["call_timeout"] = 10
    assert parse_config(render(doc)).csms.call_timeout == 10.0


def test_endpoint_appends_the_charger_id_once() -> None:
    doc = copy.deepcopy(BASE)
    doc["csms"]["url"] = "wss://csms.acme.test/ocpp/"
    assert parse_config(render(doc)).csms_endpoint == "wss://csms.acme.test/ocpp/CP-1"


def test_ocpp_seeds_as_configuration_keys() -> None:
    keys = parse_config(render(BASE)).ocpp.configuration_keys()
    assert keys["HeartbeatInterval"] == "300"
    assert keys["ConnectionTimeOut"] == "60"
    assert keys["StopTransactionOnEVSideDisconnect"] == "true"
    assert keys["MeterValuesSampledData"] == "Energy.Active.Import.Register,Power.Active.Import"
    assert len(keys) == len(dataclasses.fields(config.OcppConfig))



def test_ocpp_seeds_take_the_ranges_and_seeded_defaults_the_charger_enforces() -> None:
    specs = {spec.name: spec for spec in core_keys(1)}
    seeds = parse_config(render(BASE)).ocpp.configuration_keys()
    for key in config._OCPP.keys:
        spec = specs[key.ocpp_key]
        assert spec.parse(seeds[key.ocpp_key]) is not None  # every default seed is valid
        if spec.kind is int:
            assert key.span == (spec.minimum, spec.maximum), key.name
    doc = copy.deepcopy(BASE)
    doc["ocpp"] = {"connection_timeout": 5, "meter_value_sample_interval": 7200}
    ocpp = parse_config(render(doc)).ocpp
    assert (ocpp.connection_timeout, ocpp.meter_value_sample_interval) == (5, 7200)
    doc["ocpp"] = {"connection_timeout": 0}
    with pytest.raises(ConfigError, match=r"ocpp\.connection_timeout: .*1\.\.3600"):
        parse_config(render(doc))

def test_a_tcp_bus_needs_a_host_not_a_port() -> None:
    doc = copy.deepcopy(BASE)
    doc["bus"] = [{"name": "rs485", "type": "tcp", "host": "10.0.0.5"}]
    assert parse_config(render(doc)).buses[0].tcp_port == 502


# --- one problem each -------------------------------------------------------------------------


def test_unknown_key_lists_the_allowed_keys() -> None:
    problem = only_problem(lambda doc: doc["csms"].update(urll="ws://x"))
    assert problem.startswith("csms.urll: unknown key (did you mean 'url'?)")
    assert "allowed keys in [csms]: url, password, ocpp_version" in problem


def test_unknown_key_in_a_connector_sub_table() -> None:
    problem = only_problem(lambda doc: doc["connector"][0]["contactor"].update(pinn=4))
    assert problem.startswith("connector[1].contactor.pinn: unknown key")
    assert "allowed keys in [connector.contactor]: pin, active_high" in problem


def test_unknown_section() -> None:
    problem = only_problem(lambda doc: doc.update(readers={"driver": "none"}))
    assert problem.startswith("readers: unknown section (did you mean 'reader'?)")
    assert "[[connector]]" in problem


def test_wrong_type() -> None:
    problem = only_problem(lambda doc: doc["connector"][0].update(max_current="16"))
    assert problem == "connector[1].max_current: expected an integer, got string '16'"


def test_a_boolean_is_not_an_integer() -> None:
    problem = only_problem(lambda doc: doc["connector"][0].update(phases=True))
    assert problem == "connector[1].phases: expected an integer, got boolean true"


def test_out_of_range_names_the_range_and_unit() -> None:
    problem = only_problem(lambda doc: doc["connector"][0].update(max_current=100))
    assert problem == "connector[1].max_current: 100 is out of range; allowed 6..80 (amps)"


def test_bad_choice_lists_the_choices() -> None:
    problem = only_problem(lambda doc: doc.update(reader={"driver": "rdm"}))
    assert problem == "reader.driver: 'rdm' is not allowed; choose one of: none, rdm6300, pn532"


def test_string_too_long() -> None:
    problem = only_problem(lambda doc: doc["charger"].update(vendor="V" * 21))
    assert problem.startswith("charger.vendor: ")
    assert "has 21 characters; allowed 1..20 characters" in problem


def test_missing_required_key() -> None:
    problem = only_problem(lambda doc: doc["charger"].update(id=DELETE))
    assert problem.startswith("charger.id: missing; this key is required (OCPP charge point id")


def test_missing_required_sub_table() -> None:
    problems = problems_of(lambda doc: doc["connector"][0].pop("meter"))
    assert [problem.split(":")[0] for problem in problems] == [
        "connector[1].meter.driver",
        "connector[1].meter.bus",
    ]


def test_charger_id_must_be_url_safe() -> None:
    problem = only_problem(lambda doc: doc["charger"].update(id="my charger/1"))
    assert problem.startswith("charger.id: 'my charger/1' contains ' ' '/'")
    assert "letters A-Z a-z, digits and . _ : -" in problem


@pytest.mark.parametrize("url", ["http://csms.example.com/ocpp", "csms.example.com", "ws://"])
def test_csms_url_must_be_a_websocket_url(url: str) -> None:
    problem = only_problem(lambda doc: doc["csms"].update(url=url))
    assert problem.startswith("csms.url: ") and "ws:// or wss://" in problem


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    problem = only_problem(lambda doc: doc["csms"].update(url="wss://cp:s3cret-key@host/ocpp"))
    assert problem.startswith("csms.url: ") and "csms.password" in problem
    assert "s3cret" not in problem


def test_password_problems_never_show_the_password() -> None:
    problems = problems_of(lambda doc: doc["csms"].update(password="s3cret"))
    assert problems == ["csms.password: 6 characters given; allowed 8..40 characters"]


def test_password_is_not_in_repr() -> None:
    doc = copy.deepcopy(BASE)
    doc["csms"]["password"] = "0123456789abcdef"
    assert "0123456789abcdef" not in repr(parse_config(render(doc)))


def test_unknown_measurand() -> None:
    measurands = "Energy.Active.Import.Register,Power"
    problem = only_problem(lambda doc: doc.update(ocpp={"meter_values_sampled_data": measurands}))
    assert problem.startswith("ocpp.meter_values_sampled_data: 'Power' is not allowed")
    assert "Current.Offered" in problem


def test_reconnect_min_above_max() -> None:
    problem = only_problem(
        lambda doc: doc["csms"].update(reconnect_min=30.0, reconnect_max=10.0)
    )
    assert problem.startswith("csms.reconnect_min: 30.0 is greater than csms.reconnect_max")


def test_duplicate_gpio_pin_across_connectors() -> None:
    second = connector(2, pin=17, pilot_id=3, meter_id=4)
    problem = only_problem(lambda doc: doc["connector"].append(second))
    assert problem.startswith(
        "connector[2].contactor.pin: GPIO17 is already used by connector[1].contactor.pin"
    )


def test_feedback_pin_equal_to_contactor_pin() -> None:
    problem = only_problem(lambda doc: doc["connector"][0]["contactor"].update(feedback_pin=17))
    assert problem.startswith("connector[1].contactor.feedback_pin: GPIO17 is already used")


def test_duplicate_modbus_address_on_one_bus() -> None:
    problem = only_problem(lambda doc: doc["connector"][0]["meter"].update(device_id=1))
    assert problem.startswith(
        "connector[1].meter.device_id: device 1 on bus 'rs485' is already used by "
        "connector[1].pilot.device_id"
    )


def test_same_address_on_different_buses_is_fine() -> None:
    doc = copy.deepcopy(BASE)
    doc["bus"].append({"name": "meters", "port": "/dev/ttyUSB1"})
    doc["connector"][0]["meter"].update(bus="meters", device_id=1)
    assert parse_config(render(doc)).connectors[0].meter.bus == "meters"


def test_unknown_bus_reference_lists_the_buses() -> None:
    problem = only_problem(lambda doc: doc["connector"][0]["meter"].update(bus="rs-485"))
    assert problem == (
        "connector[1].meter.bus: 'rs-485' is not a defined bus; defined buses: rs485"
    )


def test_duplicate_bus_name() -> None:
    problem = only_problem(lambda doc: doc["bus"].append({"name": "rs485", "port": "/dev/x"}))
    assert problem.startswith("bus[2].name: 'rs485' is already used by bus[1]")


@pytest.mark.parametrize(
    ("bus", "expected"),
    [
        ({"name": "rs485"}, "bus[1].port: missing; required when type = 'rtu'"),
        ({"name": "rs485", "type": "tcp"}, "bus[1].host: missing; required when type = 'tcp'"),
    ],
)
def test_bus_type_needs_its_address(bus: Doc, expected: str) -> None:
    assert only_problem(lambda doc: doc.update(bus=[bus])) == expected


def test_serial_port_must_be_a_path_or_url() -> None:
    problem = only_problem(lambda doc: doc["bus"][0].update(port="ttyUSB0"))
    assert problem.startswith("bus[1].port: 'ttyUSB0' is neither a device path")


def test_reader_needs_a_port() -> None:
    problem = only_problem(lambda doc: doc.update(reader={"driver": "rdm6300"}))
    assert problem == "reader.port: missing; required when driver = 'rdm6300'"


def test_reader_and_bus_cannot_share_a_port() -> None:
    problem = only_problem(
        lambda doc: doc.update(reader={"driver": "rdm6300", "port": "/dev/ttyUSB0"})
    )
    assert problem == "reader.port: '/dev/ttyUSB0' is already used by bus[1].port"


def test_connector_ids_must_be_consecutive() -> None:
    third = connector(3, pin=22, pilot_id=3, meter_id=4)
    problem = only_problem(lambda doc: doc["connector"].append(third))
    assert problem.startswith("connector[2].id: 3 is out of order")
    assert "must be 1..N in file order, so this one must be 2" in problem


def test_at_least_one_connector() -> None:
    problem = only_problem(lambda doc: doc.pop("connector"))
    assert problem == "connector: 0 [[connector]] given; allowed 1..8"


def test_at_most_eight_connectors() -> None:
    many = [connector(n, pin=n, pilot_id=2 * n - 1, meter_id=2 * n) for n in range(1, 10)]
    problems = problems_of(lambda doc: doc.update(connector=many))
    assert "connector: 9 [[connector]] given; allowed 1..8" in problems


def test_array_written_as_a_table() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(render({key: value for key, value in BASE.items() if key != "bus"})
                     + '[bus]\nname = "x"\n')
    assert "bus: expected an array of tables ([[bus]]), got a table" in caught.value.problems


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[charger]\nid = "CP-1\n\n[csms]\n', source="broken.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("invalid TOML: ") and "line 2, column" in problem
    assert str(caught.value).startswith("broken.toml: invalid TOML")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot read the file: No such file or directory"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- many problems at once --------------------------------------------------------------------


def test_every_problem_is_reported_together() -> None:
    def break_many(doc: Doc) -> None:
        doc["charger"]["id"] = DELETE
        doc["csms"]["urll"] = "ws://x"
        doc["connector"][0]["max_current"] = 100
        doc["connector"][0]["meter"]["bus"] = "nope"
        doc["reader"] = {"driver": "rdm"}

    problems = problems_of(break_many)
    keys = {problem.split(":")[0] for problem in problems}
    assert keys == {
        "charger.id",
        "csms.urll",
        "connector[1].max_current",
        "connector[1].meter.bus",
        "reader.driver",
    }


def test_str_of_error_has_one_line_per_problem_with_the_source() -> None:
    doc = copy.deepcopy(BASE)
    doc["connector"][0].update(max_current=1, phases=2)
    with pytest.raises(ConfigError) as caught:
        parse_config(render(doc), source="x.toml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("x.toml: connector[1].") for line in lines)


# --- the schema and its documentation ---------------------------------------------------------


def _spec_paths(table: config.Table, target: type[Any], prefix: str) -> list[str]:
    """Dotted keys of a table spec, checking its keys against the dataclass it builds."""
    names = {key.name for key in table.keys} | {sub.field_name for sub in table.tables}
    assert names == {f.name for f in dataclasses.fields(target)}, target
    paths = [f"{prefix}{key.name}" for key in table.keys]
    for sub in table.tables:
        array = "[]" if sub.count is not None else ""
        assert isinstance(sub.target, type)
        paths += _spec_paths(sub, sub.target, f"{prefix}{sub.name}{array}.")
    return paths


def test_specs_match_the_dataclasses_and_every_key_is_documented() -> None:
    reference = describe_schema()
    paths = _spec_paths(config._ROOT, config.Config, "")
    assert len(paths) > 50
    for path in paths:
        assert f"| `{path}` |" in reference


def test_reference_marks_required_keys_and_defaults() -> None:
    lines = describe_schema().splitlines()
    assert lines[0].startswith("| key | type | default | allowed | description |")
    row = next(line for line in lines if line.startswith("| `connector[].max_current` |"))
    assert "`16`" in row and "6..80 amps" in row
    row = next(line for line in lines if line.startswith("| `charger.id` |"))
    assert "**required**" in row


# --- the command line -------------------------------------------------------------------------


def test_check_config_ok(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "examples" / "sim.toml")
    assert cli.main(["check-config", path]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{path}: OK (1 connector, reader rdm6300, csms ws://127.0.0.1:9000/ocpp/SIM-0001)\n"
    )


def test_check_config_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = copy.deepcopy(BASE)
    doc["connector"][0].update(max_current=100, phases=2)
    path = tmp_path / "bad.toml"
    path.write_text(render(doc))
    assert cli.main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}: connector[1].max_current: 100 is out of range; allowed 6..80 (amps)",
        f"{path}: connector[1].phases: 2 is not allowed; choose one of: 1, 3",
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_check_config_takes_the_file_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cli.CONFIG_ENV, str(ROOT / "examples" / "sim.toml"))
    assert cli.main(["check-config"]) == 0
    assert ": OK (1 connector, reader rdm6300, csms ws://" in capsys.readouterr().out


def test_check_config_names_the_starter_placeholders(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check-config", str(PI)]) == 2
    err = capsys.readouterr().err
    assert f"{PI}: csms.url: 'wss://csms.example.com/ocpp' is still the example" in err
    assert f"{PI}: csms.password: is still the starter placeholder" in err
    assert "REPLACE" not in err  # the password is never printed


def test_no_file_at_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.CONFIG_ENV, raising=False)
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", "/nonexistent/evse-agent/config.toml")
    assert cli.main(["run"]) == 2
    assert cli.CONFIG_ENV in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "check-config" in capsys.readouterr().err


def test_config_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config-reference"]) == 0
    assert capsys.readouterr().out == describe_schema()


def _fake_app(monkeypatch: pytest.MonkeyPatch, run: Callable[[Any], Any]) -> None:
    app = types.ModuleType("agent.app")
    app.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agent.app", app)


def test_run_validates_then_hands_the_config_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[config.Config] = []
    _fake_app(monkeypatch, lambda loaded: seen.append(loaded) or 0)
    monkeypatch.delenv(cli.CONFIG_ENV, raising=False)
    assert cli.main(["run", "--config", str(ROOT / "examples" / "sim.toml")]) == 0
    assert [loaded.charger.id for loaded in seen] == ["SIM-0001"]


def test_run_awaits_an_async_app(monkeypatch: pytest.MonkeyPatch) -> None:
    async def run(loaded: config.Config) -> int:
        return 3

    _fake_app(monkeypatch, run)
    monkeypatch.setenv(cli.CONFIG_ENV, str(ROOT / "examples" / "sim.toml"))
    assert cli.main(["run"]) == 3


def test_run_refuses_an_invalid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_app(monkeypatch, lambda loaded: pytest.fail("the app must not start"))
    path = tmp_path / "bad.toml"
    path.write_text("[charger]\n")
    assert cli.main(["run", "--config", str(path)]) == 2
    assert f"{path}: charger.id: missing" in capsys.readouterr().err


def test_python_dash_m_agent() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(ROOT / "examples" / "sim.toml")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert done.returncode == 0 and ": OK (" in done.stdout
