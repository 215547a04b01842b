"""An RDM6300 125 kHz reader module on a pseudo-terminal.

The reader driver opens :attr:`Rdm6300Emulator.port`, a stable symlink to the slave side of a
raw pty; the emulator writes frames into the master side. :meth:`unplug` removes the pty (the
driver's reads fail, as with a USB adapter pulled out) and :meth:`replug` creates a new one
behind the same path, so the driver's reopen loop finds it again.

pyserial flushes the input buffer when it opens a port: frames written before the driver
opened the port are lost, exactly as with the real module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import tty

from hal.rdm6300 import encode_frame


class Rdm6300Emulator:
    """One emulated module; :attr:`port` is the path the driver opens."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="evsim-rdm6300-")
        self.port = os.path.join(self._dir, "ttyRDM6300")
        self._master: int | None = None
        self._slave: int | None = None
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def present(self, card_id: int, version: int = 0x0F, repeats: int = 3) -> None:
        """Hold a card in the field long enough for ``repeats`` frames."""
        self.write_raw(encode_frame(version, card_id) * repeats)

    def write_raw(self, data: bytes) -> None:
        """Send arbitrary bytes (noise, broken frames) to the driver."""
        if self._master is None:
            raise RuntimeError("the emulated RDM6300 is unplugged")
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]

    def unplug(self) -> None:
        """Remove the device: the driver's port fails and the path disappears."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def replug(self) -> None:
        """Plug a (new) device in behind the same :attr:`port` path. No-op when plugged."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # ETX is ^C: a cooked tty would swallow it
        self._master, self._slave = master, slave
        link = self.port + ".new"
        os.symlink(os.ttyname(slave), link)
        os.replace(link, self.port)

    def close(self) -> None:
        """Unplug and remove the temporary directory. Idempotent."""
        self.unplug()
        shutil.rmtree(self._dir, ignore_errors=True)
