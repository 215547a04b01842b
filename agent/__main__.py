"""``python -m agent``: the same as the ``evse-agent`` command."""

from agent.cli import main

raise SystemExit(main())
