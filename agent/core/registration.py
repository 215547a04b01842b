"""Registration with the CSMS: the boot, its retries, the heartbeat, and the link's state.

Until the CSMS accepts the registration the charger sends nothing else (OCPP 1.6 TC_001,
TC_002; 2.0.1 B01-B03) and transaction messages wait in the journal
(:class:`agent.core.effects.OpenTransactionQueue`).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.core import effects as fx
from agent.core import messages as msg
from agent.core.context import Context, Pending
from agent.core.status import StatusReport
from agent.core.types import RegistrationStatus

BOOT_RETRY_DEFAULT = 60  # seconds, when the CSMS gives interval 0 for Pending/Rejected
BOOT_RETRY_AFTER_FAILURE = 30


class Registration:
    """``accepted`` is called each time the CSMS accepts the registration."""

    def __init__(self, ctx: Context, status: StatusReport, accepted: Callable[[], None]) -> None:
        self._ctx = ctx
        self._state = ctx.registration
        self._status = status
        self._accepted = accepted

    def on_link_up(self) -> None:
        self._state.link_up = True
        if self._state.accepted:
            self._status.report_all()
            self.arm_heartbeat()
        else:
            self.boot()

    def on_link_down(self) -> None:
        self._state.link_up = False
        self._state.booting = False
        self._status.report_all()  # report the current state again after reconnect
        self._ctx.emit(fx.CancelTimer("heartbeat"))

    def boot(self) -> None:
        if self._state.booting or not self._state.link_up:
            return
        self._state.booting = True
        config = self._ctx.config
        req = msg.RegistrationRequest(
            vendor=config.vendor,
            model=config.model,
            serial_number=config.serial_number,
            firmware_version=config.firmware_version,
        )
        self._ctx.send(req, Pending("boot"))

    def reboot(self) -> None:
        """TriggerMessage BootNotification: register again, even while a boot is pending."""
        self._state.booting = False
        self.boot()

    def on_answer(self, ref: str, pending: Pending, conf: msg.InboundConf) -> None:
        if not isinstance(conf, msg.RegistrationResult):
            return
        self._state.booting = False
        self._state.status = conf.status
        if conf.status is RegistrationStatus.ACCEPTED:
            if conf.interval > 0:
                self._ctx.settings.restore("HeartbeatInterval", conf.interval)
            self._ctx.emit(fx.OpenTransactionQueue(True))
            self._status.report_all()
            self.arm_heartbeat()
            self._accepted()
            return
        # TC_001/TC_002: send nothing else and boot again only after the given interval.
        self._ctx.emit(fx.StartTimer("boot", float(conf.interval or BOOT_RETRY_DEFAULT)))

    def on_failed(self, pending: Pending, reason: str) -> None:
        self._state.booting = False
        self._ctx.emit(fx.StartTimer("boot", float(BOOT_RETRY_AFTER_FAILURE)))

    def on_boot_timer(self, arg: str) -> None:
        self.boot()

    def arm_heartbeat(self) -> None:
        interval = self._ctx.settings.int("HeartbeatInterval")
        if interval > 0:
            self._ctx.emit(fx.StartTimer("heartbeat", float(interval)))
        else:
            self._ctx.emit(fx.CancelTimer("heartbeat"))

    def on_heartbeat_timer(self, arg: str) -> None:
        if self._ctx.online:
            self.heartbeat()
        self.arm_heartbeat()

    def heartbeat(self) -> None:
        self._ctx.send(msg.HeartbeatRequest(), Pending("heartbeat"))

    def on_interval_changed(self) -> None:
        if self._state.accepted:
            self.arm_heartbeat()
