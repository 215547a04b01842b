"""The composition root: the one place that chooses implementations and wires them together.

:class:`Agent` opens the state store, builds the drivers named in the configuration
(:mod:`agent.hardware`), settles the transactions a crash left open (:mod:`agent.recovery`),
and runs the core, the device supervision, the OCPP message log, the status socket, the
link and the systemd notifications. ``run(config)`` runs it until SIGTERM/SIGINT and shuts
down in order: contactors open, transactions end by policy, the backlog is given a last
chance, the link closes, the store is closed. A Reset from the CSMS ends the same way and
then starts the process again.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import logging
import os
import signal
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent import __version__, clock, decisions, local_limit, logs, sdnotify
from agent.api.auth import TokenFileError, Tokens, load_tokens
from agent.api.service import SessionService
from agent.config import Config
from agent.core import effects as fx
from agent.core import events as ev
from agent.core.settings import SettingError, Settings, core_keys
from agent.core.station import ConnectorConfig as CoreConnector
from agent.core.station import IdSource, Station, StationConfig
from agent.core.types import ErrorCode, StopReason
from agent.csms.adapter import Adapter
from agent.csms.link import Link, LinkSettings
from agent.frame_log import FrameLog, FrameStore, decision_text
from agent.hardware import Hardware
from agent.indication import IndicatorFeed
from agent.logs import RecentProblems
from agent.maintenance.diagnostics import masked_config
from agent.maintenance.service import Maintenance
from agent.mqtt import wiring as mqtt_wiring
from agent.mqtt.wiring import MqttConfigError
from agent.outbox import Outbox
from agent.recovery import RecoveryPolicy, recover
from agent.runtime import ConnectorHardware, Runtime
from agent.security import events
from agent.security.files import UnsafeKeyFile
from agent.security.service import SecurityService
from agent.security.wiring import open_security
from agent.status_server import StatusServer, default_socket
from agent.store import Store, StoreError, StorePersistence
from agent.supervision import MeterHealth, Supervisor
from hal.errors import WrongSite

if TYPE_CHECKING:  # imported where used: aiohttp (~14 MB) only with [api] configured
    from agent.api.server import ApiServer
    from agent.api.webhooks import Webhooks
    from agent.mqtt.service import MqttService  # imported by mqtt_wiring.build, when used

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 8.0
MQTT_CLOSE_SECONDS = 3.0
EXIT_STORE_FAILED = 74  # sysexits EX_IOERR
EXIT_CONFIG = 2  # as for a bad configuration file: systemd does not restart the agent
EXIT_NO_PERMISSION = 77  # sysexits EX_NOPERM: a private key with too open a mode
EXIT_RESTART = 75  # sysexits EX_TEMPFAIL: an update asks the service manager for a restart


def station_config(config: Config) -> StationConfig:
    free = config.authorization.free_id_tag if config.authorization.mode == "free" else None
    return StationConfig(
        vendor=config.charger.vendor,
        model=config.charger.model,
        serial_number=config.charger.serial_number,
        firmware_version=config.charger.firmware_version or __version__,
        connectors=tuple(CoreConnector(c.id, float(c.max_current), has_lock=c.lock is not None,
                                       voltage=c.voltage, phases=c.phases,
                                       phase_switch=c.phase_switch_spec)
                         for c in config.connectors),
        free_vend_id_tag=free,
        authorize_timeout=config.authorization.authorize_timeout,
    )


def settings_from(config: Config, store: Store | None = None) -> Settings:
    """The file's seeds, overridden by the values the CSMS set (kept in ``store``)."""
    seeds = {"WebSocketPingInterval": str(config.csms.ping_interval),
             **config.ocpp.configuration_keys()}
    relay = any(c.phase_switch is not None for c in config.connectors)
    settings = Settings(core_keys(len(config.connectors), relay), seeds)
    for name, value in (store.settings() if store is not None else {}).items():
        try:
            if settings.is_readonly(name):
                raise SettingError("read-only key")
            settings.restore(name, value)
        except (KeyError, SettingError) as error:
            problem = error.args[0] if isinstance(error, SettingError) else "unknown key"
            log.warning("state store: ignoring configuration %s = %r: %s", name, value, problem)
    return settings


def id_source(store: Store) -> IdSource:
    # Transaction refs must not repeat across restarts (the journal maps each to a CSMS
    # transactionId): continue after the highest one the store has seen.
    counter = itertools.count(store.max_tx_ref() + 1)
    return IdSource(next_ref=lambda: str(uuid.uuid4()), next_tx_ref=lambda: next(counter))


def link_settings(config: Config) -> LinkSettings:
    c = config.csms
    return LinkSettings(
        url=c.url,
        charge_point_id=config.charger.id,
        password=c.password,
        call_timeout=c.call_timeout,
        reconnect_min=c.reconnect_min,
        reconnect_max=c.reconnect_max,
        ping_interval=float(c.ping_interval),
        use_proxy=c.use_proxy,
    )



ADAPTER_MODULES = {"1.6": "agent.csms.v16", "2.0.1": "agent.csms.v201"}
"""The OCPP version spoken to the CSMS, by ``csms.ocpp_version``: only the configured
version's module (and its ``ocpp`` schemas and types, ~3 MB each) is imported."""


def adapter_for(version: str) -> Adapter:
    adapter: Adapter = importlib.import_module(ADAPTER_MODULES[version]).ADAPTER
    return adapter


def build(config: Config, hardware: Hardware, store: Store,
          devices: dict[int, ConnectorHardware] | None = None) -> tuple[Runtime, Link]:
    """:func:`build_with_security` without the security service."""
    runtime, link, _ = build_with_security(config, hardware, store, devices)
    return runtime, link


def build_with_security(config: Config, hardware: Hardware, store: Store,
                        devices: dict[int, ConnectorHardware] | None = None
                        ) -> tuple[Runtime, Link, SecurityService]:
    """Wire the core, the delivery layer, the security service and the link over ``store``;
    without ``devices``, the connectors' drivers are built. The outbox takes up the journal
    here: recover before."""
    station = Station(station_config(config), settings_from(config, store), id_source(store))
    if devices is None:
        devices = hardware.connectors()
    link_holder: list[Link] = []
    adapter = adapter_for(config.csms.ocpp_version)

    def outbox(runtime: Runtime) -> Outbox:
        return Outbox(lambda ref, req, txid: link_holder[0].send(ref, req, txid),
                      runtime.post, station.settings, lambda: clock.now().mono, store,
                      wall=lambda: clock.now().utc.timestamp(),
                      csms_transaction_ids=adapter.uses_csms_transaction_ids)

    persistence = StorePersistence(store)
    station.restore_availability(persistence.load_availability())
    station.restore_authorization(persistence.load_cache(), *persistence.load_local_list())
    station.restore_reservations(persistence.load_reservations())
    station.restore_charging_profiles(persistence.load_charging_profiles())
    station.restore_local_limits(persistence.load_local_limits())
    runtime = Runtime(station, devices, hardware.reader(), outbox, persistence)
    persistence.on_write = runtime.outbox.store_written  # a failing store is one fault

    def device_failed(cid: int, code: str, error: BaseException | None) -> None:  # any thread
        if runtime.started:  # the adapter cuts the info to OCPP's 50 characters
            runtime.post(ev.DeviceFault(cid, code, error is not None,
                                        str(error) if error else None))

    hardware.on_device_failure = device_failed
    runtime.meter_health = {cid: MeterHealth(cid, runtime.post) for cid in devices}
    security = open_security(config, runtime.outbox.put,
                             lambda ref, req: link_holder[0].send(ref, req, None))

    def replied() -> None:
        runtime.replied()
        security.replied()

    link = Link(link_settings(config), adapter, security.commands(runtime.command),
                runtime.on_link_state, replied,
                ping_interval=lambda: float(station.settings.get("WebSocketPingInterval")),
                policy=security.profiles, refused=security.invalid_message,
                sent=runtime.outbox.flush_confirmed)
    security.reconnect = link.reconnect
    link_holder.append(link)
    return runtime, link, security


class Agent:
    """The whole agent on the running event loop: ``await start()`` … ``await stop()``.

    ``start`` opens the store (StoreError when it cannot), builds the drivers with every
    contactor open, settles what a crash left open (:mod:`agent.recovery`), starts the core,
    the device supervision, the message log, the status socket and the link, and tells
    systemd it is ready. ``stop`` is the ordered shutdown: contactors open first,
    transactions end by policy, the backlog gets a last chance, then the link, the log, the
    devices and the store close.
    """

    def __init__(self, config: Config, *, status_socket: Path | None = None,
                 policy: RecoveryPolicy | str | None = None,
                 drain_seconds: float = SHUTDOWN_DRAIN_SECONDS) -> None:
        self.config = config
        # ``[recovery] policy`` unless the caller chooses; ValueError for an unknown policy.
        self.policy = RecoveryPolicy(config.recovery.policy if policy is None else policy)
        self.drain_seconds = drain_seconds
        self.status_socket = status_socket or default_socket(config.charger.state_dir)
        self.problems = RecentProblems(secrets=_shown_secrets(config))
        self.restart_requested: bool | None = None  # a CSMS Reset: hard?
        self.release_restart = False  # an update switched releases or failed its trial
        self.maintenance: Maintenance | None = None
        self.power_lost = False  # SIGPWR: the supply failed, a backup carries the stop
        self.stopped = asyncio.Event()
        self.store: Store | None = None
        self.hardware = Hardware(config)
        self.runtime: Runtime
        self.link: Link
        self.security: SecurityService
        self.frames: FrameLog | None = None
        self._status: StatusServer | None = None
        self.sessions: SessionService | None = None  # session records, for the API and others
        self.api: ApiServer | None = None
        self._tokens: Tokens | None = None
        self.mqtt: MqttService | None = None  # [mqtt]: state, events, commands, discovery
        self._mqtt_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        config = self.config
        # A bad tokens file fails the start before anything runs (exit 2, naming the key).
        self._tokens = load_tokens(config.api) if config.api is not None else None
        if config.mqtt is not None:
            mqtt_wiring.password(config.mqtt)  # and a bad broker password file too
        self.store = Store.open(config.charger.state_dir)
        try:
            # The pin factory first, off the loop: the simulator's waits up to 2 s for its
            # world to say which site it is (hal.gpio.claim_site), and that world may be
            # served on this very loop (tests, the demo).
            await asyncio.to_thread(lambda: self.hardware.pin_factory)
            devices = self.hardware.connectors()  # every contactor starts open
            # Before the core, the outbox and the link: what a crash left open is settled,
            # its StopTransaction journaled behind the messages still pending.
            await recover(self.store, {cid: hw.meter for cid, hw in devices.items()},
                          self.policy)
            self.runtime, self.link, self.security = build_with_security(
                config, self.hardware, self.store, devices)
        except BaseException:
            self.hardware.close()
            self.store.close()
            raise
        logging.getLogger().addHandler(self.problems)
        self.sessions = SessionService(self.store, self.runtime, config.evse_ids,
                                       authorize_timeout=config.authorization.authorize_timeout)
        hooks = self._webhooks(self.store, self.sessions)
        if config.api is not None and config.api.pre_authorization_url is not None:
            from agent.api.preauth import PreAuthorization  # aiohttp: only with [api]

            self.sessions.pre_authorize = PreAuthorization(
                config.api.pre_authorization_url, config.api.pre_authorization_timeout,
                config.charger.id)
        self.sessions.attach()  # before the core starts: it sees every event
        self.mqtt = mqtt_wiring.build(config, self._mqtt_snapshot, self.sessions)
        if self.mqtt is not None:
            self.mqtt.attach(self.runtime.listeners)
        self.frames = self._open_frame_log()
        self.runtime.on_reboot = self._reboot
        self.runtime.listeners.append(self._on_event)
        self.maintenance = Maintenance(self.runtime, config, self.store, lambda: self.frames,
                                       _secrets(config), self._restart_release, self.security)
        self.runtime.command_handlers.append(self.maintenance.command)
        self.runtime.listeners.append(self.maintenance.on_event)
        await self.runtime.start()
        self.maintenance.start()
        for cid in self.hardware.tripped():  # an RCD that was tripped before the core ran
            self.runtime.post(ev.DeviceFault(cid, ErrorCode.GROUND_FAILURE, True, "RCD tripped"))
        indicator = self.hardware.indicator()
        if indicator is not None:
            self.runtime.listeners.append(IndicatorFeed(indicator, self.runtime.station))
        supervisor = Supervisor(self.runtime.post,
                                {cid: hw.interlock.contactor for cid, hw in devices.items()},
                                {cid: hw.meter for cid, hw in devices.items()},
                                self.runtime.meter_health,
                                idle_meter_interval=config.supervision.idle_meter_interval)
        self.runtime.listeners.append(supervisor.on_event)  # a close is checked at once
        self._spawn(supervisor.run(), "supervisor")
        supervisor.watch_phase_relays({cid: hw.phase_switch for cid, hw in devices.items()
                                       if hw.phase_switch is not None})
        self._status = await self._open_status_server()
        self.api = await self._open_api(self.sessions)
        if hooks is not None:
            self._spawn(hooks.run(), "webhooks")
        if self.mqtt is not None:  # never awaited by charging: the broker may be away
            self._mqtt_task = asyncio.create_task(self.mqtt.run(), name="mqtt")
        sdnotify.ready(f"{len(config.connectors)} connector(s), CSMS offline")
        interval = sdnotify.watchdog_interval()
        if interval is not None:
            self._spawn(sdnotify.watchdog_loop(interval, lambda: True), "watchdog")
        self.security.raise_event(events.STARTUP, f"evse-agent {__version__} started")
        self._watch_tamper()
        self._spawn(self.security.run(), "certificate expiry")
        self._spawn(self.link.run(), "link")
        log.info("ready: %d connector(s), CSMS %s", len(config.connectors),
                 config.csms_endpoint)

    async def stop(self, reason: StopReason = StopReason.REBOOT) -> None:
        """The ordered shutdown. Safe to call once after start(). Transactions end with
        ``reason``: PowerLoss when a backup supply carries the stop (TC_032_1)."""
        sdnotify.stopping()
        try:
            await self.runtime.shutdown(self.drain_seconds, reason)  # contactors open first
        finally:
            await self._release()

    async def halt(self) -> None:
        """Stop as a power cut without backup would: no transaction is stopped, nothing is
        drained or sent; the devices are released and the store keeps what it committed."""
        try:
            await self.runtime.halt()
        finally:
            await self._release()

    async def _release(self) -> None:
        if self.maintenance is not None:
            await self.maintenance.close()
        await self._close_mqtt()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._status is not None:
            await self._status.close()
        if self.api is not None:
            await self.api.close()
        if self.sessions is not None:
            self.sessions.close()
        if self.frames is not None:
            self.frames.close()
        logging.getLogger().removeHandler(self.problems)
        self.hardware.close()
        if self.store is not None:
            self.store.close()
        self.stopped.set()

    def snapshot(self) -> dict[str, Any]:
        snapshot = status_snapshot(self.config, self.runtime, self.link, self.problems.entries())
        snapshot["security"] = self.security.status()
        return snapshot

    # --- internals --------------------------------------------------------------------

    def _mqtt_snapshot(self) -> dict[str, Any]:
        return status_snapshot(self.config, self.runtime, self.link, [])

    async def _close_mqtt(self) -> None:
        """``offline`` on the availability topic and a clean disconnect, within 3 s."""
        if self.mqtt is None or self._mqtt_task is None:
            return
        await self.mqtt.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._mqtt_task), MQTT_CLOSE_SECONDS)
        except TimeoutError:
            self._mqtt_task.cancel()
            await asyncio.gather(self._mqtt_task, return_exceptions=True)

    def _watch_tamper(self) -> None:
        """``[tamper]``: the switch's edges come on gpiozero's thread, the events go out on
        the loop; an enclosure already open at start is reported too."""
        loop = asyncio.get_running_loop()
        security = self.security

        def changed(opened: bool) -> None:  # gpiozero's thread
            loop.call_soon_threadsafe(security.tamper, opened)

        if self.hardware.watch_tamper(changed):
            security.tamper(True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _open_frame_log(self) -> FrameLog | None:
        try:
            frames = FrameLog(FrameStore(self.config.charger.state_dir),
                              secrets=_secrets(self.config)).attach()
        except OSError as error:
            log.error("message log: cannot write in %s: %s (charging goes on without it)",
                      self.config.charger.state_dir, error)
            return None
        return frames

    async def _open_status_server(self) -> StatusServer | None:
        store = self.store
        assert store is not None
        limit = local_limit.command(self.runtime)
        phases = local_limit.phases_command(self.runtime)
        server = StatusServer(self.status_socket, self.snapshot, {
            decisions.QUESTION: lambda request: decisions.answer(store, request),
            "limit": lambda request: limit([str(word) for word in request.get("args", [])]),
            "phases": lambda request: phases([str(word) for word in request.get("args", [])]),
        })
        try:
            await server.start()
        except OSError as error:  # SocketInUse too: status is for people, charging goes on
            log.error("status: cannot serve on %s: %s", self.status_socket, error)
            return None
        return server

    def _webhooks(self, store: Store, sessions: SessionService) -> Webhooks | None:
        api = self.config.api
        if api is None or api.webhook_url is None:
            return None
        from agent.api.server import session_view  # aiohttp: only with [api]
        from agent.api.webhooks import Webhooks

        hooks = Webhooks(store, api.webhook_url, self.config.charger.id, session_view,
                         sessions.set_amount)
        sessions.on_saved = hooks.enqueue  # before attach: recovery's events too
        return hooks

    async def _open_api(self, sessions: SessionService) -> ApiServer | None:
        api = self.config.api
        if api is None or self._tokens is None:
            return None
        from agent.api.bench import BenchProxy  # aiohttp: only with [api]
        from agent.api.server import AgentViews, Api, ApiServer

        views = AgentViews(self.snapshot,
                           lambda: masked_config(self.config, _shown_secrets(self.config)),
                           lambda: self.frames,
                           BenchProxy(api.bench_url) if api.bench_url else None)
        server = ApiServer(Api(sessions, self._tokens, self.config.charger.id, views),
                           api.host, api.port, api.max_body)
        try:
            await server.start()
        except OSError as error:  # the API is for integrators; charging goes on without it
            log.error("sessions API: cannot listen on %s: %s", api.listen, error)
            return None
        return server

    def _on_event(self, event: ev.Event, effects: list[fx.Effect]) -> None:
        for effect in effects:  # `evse-agent log --id-tag` shows why a card was refused
            if isinstance(effect, fx.AuthorizationDecided) and self.frames is not None:
                self.frames.record_event(decision_text(
                    effect.id_tag, effect.purpose, effect.connector_id, effect.accepted,
                    effect.source, effect.status, effect.reason), effect.connector_id,
                    effect.id_tag)
        if isinstance(event, ev.LinkUp | ev.LinkDown):
            up = isinstance(event, ev.LinkUp)
            if self.frames is not None:
                self.frames.record_event("link up" if up else "link down")
            sdnotify.status(f"{len(self.config.connectors)} connector(s), CSMS "
                            f"{'online' if up else 'offline'}")

    def on_power_failure(self) -> None:
        """SIGPWR, from a UPS daemon: stop now, transactions end with PowerLoss (TC_032_1)."""
        log.warning("power failure: stopping on the backup supply")
        self.power_lost = True
        self.stopped.set()

    def _restart_release(self) -> None:
        log.warning("update: stopping so that the service manager starts the current release")
        self.release_restart = True
        self.stopped.set()

    def _reboot(self, hard: bool) -> None:
        log.warning("reset (%s) requested by the CSMS: restarting", "hard" if hard else "soft")
        self.restart_requested = hard
        self.stopped.set()


def _secrets(config: Config) -> tuple[str, ...]:
    return tuple(s for s in (config.csms.password,) if s) + mqtt_wiring.secrets(config)


def _shown_secrets(config: Config) -> tuple[str, ...]:
    """What the dashboard's configuration page masks beyond the key names the diagnostics
    bundle masks: the API's tokens wherever they appear, and the query string of a hook URL
    (where a receiver's key often travels)."""
    found = list(_secrets(config))
    if config.api is not None:
        found += [token.secret for token in config.api.tokens]
        for url in (config.api.webhook_url, config.api.pre_authorization_url):
            query = urlsplit(url).query if url else ""
            found += [query] if len(query) >= 8 else []  # not a trivial "a=1" everywhere
    return tuple(found)


def status_snapshot(config: Config, runtime: Runtime, link: Link,
                    last_errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The document ``evse-agent status`` shows (agent.status_server)."""
    station = runtime.station
    registration = station.registration.status
    connectors = []
    for cid, connector in station.connectors.items():
        hw = runtime.hardware[cid]
        tx = connector.transaction
        reading = connector.last_reading
        contactor = hw.interlock.contactor
        connectors.append({
            "id": cid,
            "status": station.status(cid).value,
            "phase": connector.lifecycle.state,
            "pilot": connector.pilot.value,
            "contactor": "closed" if contactor.commanded_closed else "open",
            "error": ", ".join(connector.faults) or "NoError",
            "transaction": None if tx is None else {
                "id": tx.transaction_id, "tag": tx.id_tag,
                "started": tx.started_at.isoformat() if tx.started_at else None,
                "meter_start": tx.meter_start_wh,
            },
            "reservation": None if connector.reservation is None else {
                "id": connector.reservation.reservation_id,
                "tag": connector.reservation.id_tag,
                "expiry": connector.reservation.expiry.isoformat(),
            },
            "power_w": reading.power_w if reading else None,
            "energy_wh": reading.energy_wh if reading else None,
            **local_limit.limit_view(station, cid),
        })
    return {
        "charger": {"id": config.charger.id, "version": __version__},
        "link": {"up": link.up,
                 "registration": registration.value if registration else None,
                 "endpoint": config.csms_endpoint},
        "connectors": connectors,
        "last_errors": last_errors,
    }


async def serve(config: Config) -> Agent:
    """Run the agent until SIGTERM or SIGINT, a CSMS Reset or an update's restart; returns
    the stopped agent (``restart_requested``, ``release_restart``). Raises StoreError when the
    store is unusable."""
    agent = Agent(config)  # [recovery] policy
    loop = asyncio.get_running_loop()
    # Before start(): a SIGTERM during recovery's meter reads still gets the ordered stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopped.set)
    loop.add_signal_handler(signal.SIGPWR, agent.on_power_failure)
    await agent.start()
    await agent.stopped.wait()
    log.info("stopping")
    agent.stopped.clear()
    await agent.stop(StopReason.POWER_LOSS if agent.power_lost else StopReason.REBOOT)
    return agent


def run(config: Config) -> int:
    logs.configure(config.log.level, config.log.ocpp_frames, secrets=_shown_secrets(config))
    try:
        agent = asyncio.run(serve(config))
    except StoreError as error:
        log.critical("%s", error)  # never run without the journal: it would lose transactions
        return EXIT_STORE_FAILED
    except (WrongSite, TokenFileError, MqttConfigError) as error:
        log.critical("%s", error)  # systemd's RestartPreventExitStatus=2: no restart loop
        return EXIT_CONFIG
    except UnsafeKeyFile as error:
        log.critical("%s", error)  # a key others could read is not used
        return EXIT_NO_PERMISSION
    if agent.release_restart:
        # The unit's Restart= starts releases/current again, through the guard (ExecStartPre).
        logging.shutdown()
        return EXIT_RESTART
    restart = agent.restart_requested
    if restart is not None:
        # A Reset from the CSMS: the process starts again as it was started. A hard reset
        # cannot power-cycle the Pi from an unprivileged service; it restarts the agent too.
        log.warning("restarting: %s", " ".join(sys.orig_argv))
        logging.shutdown()
        os.execv(sys.executable, sys.orig_argv)
    return 0
