"""Optional features cost nothing when they are off: a charger started without ``[api]``, without
certificates and on OCPP 1.6 never imports aiohttp (the sessions API, ~14 MB), cryptography
(the security extension's certificates, ~8 MB) or the OCPP 2.0.1 layer (docs/performance.md,
resident memory). Checked in a fresh interpreter, since this one has imported everything."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OPTIONAL = ("aiohttp", "cryptography", "aiomqtt", "agent.csms.v201", "agent.api.server",
            "agent.api.webhooks", "agent.api.preauth", "agent.api.bench",
            "agent.api.dashboard", "agent.mqtt.client", "agent.security.certificates")

# Started for real: the drivers, the store, the recovery, the core, the supervision, the
# security service's first expiry check, the status socket and the link's first attempt.
# No device and no CSMS answer (closed ports, a missing reader), which the agent rides out
# as it does on a charger whose wiring is not finished.
START = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    from agent.app import Agent
    from agent.config import parse_config

    async def main(text, state):
        agent = Agent(parse_config(text, "minimal.toml"), status_socket=Path(state) / "s.sock",
                      drain_seconds=0.1)
        await agent.start()
        agent.security.check_expiry()  # what its task does first, whenever that task runs
        agent.snapshot()  # what `evse-agent status` asks for
        await asyncio.sleep(0.3)  # the started tasks get to run (the link tries the CSMS)
        loaded = sorted(name for name in sys.modules)
        await agent.halt()
        return loaded

    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
""")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def minimal_config(state: Path) -> str:
    text = (ROOT / "examples" / "sim.toml").read_text()
    return (text.replace('pin_factory = "evsim"', 'pin_factory = "mock"')
            .replace("socket://127.0.0.1:8402", f"socket://127.0.0.1:{closed_port()}")
            .replace("ws://127.0.0.1:9000/ocpp", f"ws://127.0.0.1:{closed_port()}/ocpp")
            .replace("/tmp/evse-sim/reader", str(state / "no-reader"))
            .replace('state_dir = "./state"', f'state_dir = "{state}"'))


def modules_after(code: str, *args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_agent_loads_no_optional_feature() -> None:
    loaded = modules_after("import json, sys, agent.app, agent.cli\n"
                           "print(json.dumps(sorted(sys.modules)))")
    assert "agent.app" in loaded
    assert loaded.isdisjoint(OPTIONAL), sorted(loaded & set(OPTIONAL))


def test_a_started_agent_without_api_or_certificates_loads_no_optional_feature(
        tmp_path: Path) -> None:
    loaded = modules_after(START, minimal_config(tmp_path), str(tmp_path))
    assert {"agent.csms.v16", "hal.pilot_evse_board", "agent.security.service"} <= loaded
    assert loaded.isdisjoint(OPTIONAL), sorted(loaded & set(OPTIONAL))


def test_the_api_table_brings_aiohttp_in(tmp_path: Path) -> None:
    """The check above can fail: the same start with ``[api]`` configured loads aiohttp."""
    config = minimal_config(tmp_path) + textwrap.dedent(f"""
        [api]
        listen = "127.0.0.1:{closed_port()}"
        [[api.token]]
        scope = "read"
        secret = "{'t' * 32}"
    """)
    loaded = modules_after(START, config, str(tmp_path))
    assert {"aiohttp", "agent.api.server"} <= loaded
