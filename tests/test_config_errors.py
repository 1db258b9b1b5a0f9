"""Bad site files and the messages they must give: a case is a file in config_cases/.

Each file lists, in `# expect:` lines, every problem it must report (a substring of the
message, which starts with file:line:column). A new case needs no new code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.modbus.config import ModbusTcpDevice
from edge_agent.cli import main
from edge_agent.config.loader import ConfigError, load_site
from edge_agent.config.schema import SiteConfig

CASES = sorted((Path(__file__).parent / "config_cases").glob("*.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_file_reports_every_problem_with_its_place(case: Path) -> None:
    expected = re.findall(r"^# expect: (.+)$", case.read_text(), re.MULTILINE)
    assert expected, f"{case.name} has no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        load_site(case, environ={})
    reported = [str(p) for p in caught.value.problems]
    for message in expected:
        assert any(message in line for line in reported), (
            f"expected {message!r} among:\n" + "\n".join(reported)
        )
    assert len(reported) == len(expected), "\n".join(reported)


def test_a_site_built_in_code_is_refused_with_every_broken_rule_and_its_field() -> None:
    """The rules the loader places in the file, raised by the model for a site built in code."""
    points = {"p": {"address": 0}}
    meter = {"name": "m", "driver": "modbus-tcp", "host": "10.0.0.5", "points": points}
    on_a_line = {"name": "m", "driver": "modbus", "line": "rs458", "points": points}
    with pytest.raises(ValidationError) as caught:
        SiteConfig.model_validate(
            {
                "site": {"name": "press-shop", "park": "test-park"},
                "devices": [meter, on_a_line],
                "control": {"meter": "incomr", "limit_kw": 100},
            }
        )
    message = str(caught.value)
    assert "devices[m].name: two devices are named 'm' (entries 1 and 2)" in message
    assert "devices[m].line: no line named 'rs458' under modbus_lines" in message
    assert "control.meter: no device named 'incomr' under devices (m)" in message


def test_check_exits_2_with_messages_and_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(Path(__file__).parent / "config_cases" / "misspelt_key.yaml")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'port'?" in err
    assert "Traceback" not in err


def test_environment_variables_are_substituted(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("""
site: {name: press-shop, park: binh-duong-1}
broker: {username: "${MQTT_USER}", password: "${MQTT_PASSWORD}", port: "${MQTT_PORT:-8883}"}
devices:
  - {name: m1, driver: modbus-tcp, model: eastron-sdm630, host: 10.0.0.5}
""")
    config = load_site(site, environ={"MQTT_USER": "gw-7", "MQTT_PASSWORD": "s3cret"})
    assert config.broker.username == "gw-7"
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.broker.port == 8883


def test_a_plant_engineer_needs_about_ten_lines_for_an_sdm630(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("""\
site: {name: press-shop, park: binh-duong-1}
broker: {host: broker.park.local}
devices:
  - name: main-meter
    driver: modbus-tcp
    model: eastron-sdm630
    host: 192.168.10.21
""")
    config = load_site(site)
    device = config.devices[0]
    assert len(device.points) == 20
    assert device.points["total_power_kw"].scale == 0.001
    assert config.summary.interval_s == 60


def test_a_site_overrides_and_drops_catalogue_points(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("""
site: {name: press-shop, park: binh-duong-1}
devices:
  - name: main-meter
    driver: modbus-tcp
    model: eastron-sdm630
    host: 10.0.0.5
    max_gap_registers: 0
    points:
      import_energy_kwh: {poll_interval_s: 15}
      total_energy_kwh: null
      ambient_c: {address: 900, unit: degC}
""")
    device = load_site(site).devices[0]
    assert isinstance(device, ModbusTcpDevice)
    assert device.max_gap_registers == 0
    assert device.points["import_energy_kwh"].poll_interval_s == 15
    assert device.points["import_energy_kwh"].address == 72
    assert "total_energy_kwh" not in device.points
    assert device.points["ambient_c"].type.value == "float32"  # the model's point defaults


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "SiteConfig"
    assert schema["additionalProperties"] is False
    assert "ModbusTcpDevice" in schema["$defs"]
