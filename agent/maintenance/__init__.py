"""Remote maintenance: firmware (= agent release) updates and diagnostics uploads.

Everything here does I/O (files, subprocesses, the network) and stays outside :mod:`agent.core`;
the runtime hands the CSMS's UpdateFirmware and GetDiagnostics to :class:`Maintenance` and the
core is only asked whether a transaction is running.

* :mod:`agent.maintenance.package`: the release package (a tarball with a manifest of sha256
  checksums around the agent's wheel), how to build and verify one;
* :mod:`agent.maintenance.transfer`: downloads and uploads over http(s) and ftp, with retries;
* :mod:`agent.maintenance.releases`: the layout on the charger (``releases/<name>`` venvs, the
  ``current`` link, the trial and report files the guard shares), install and switch;
* :mod:`agent.maintenance.firmware`: UpdateFirmware from download to the health check;
* :mod:`agent.maintenance.diagnostics`: GetDiagnostics, the bundle and its upload;
* :mod:`agent.maintenance.service`: the two wired to the runtime (commands, reports, triggers).
"""
