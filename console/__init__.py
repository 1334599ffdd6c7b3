"""The web console's foundation: operator accounts and roles, sessions, CSRF and
lock-out (``accounts``, ``roles``, ``sessions``, ``passwords``), the HTTP side
every console page stands on (``api``), ``hub user …`` (``cli``). Above ``web``,
below ``app``; its state lives in the hub's store (``core.operators``)."""
