"""The one-way optical gate (单向光闸): UDP, no acknowledgements.

Modules, sending side: ``sender`` (sessions, passes, interleaving), ``pacing``.
Receiving side: ``rxsocket`` (a socket that can only receive), ``receiver``,
``staging`` (resumable, memory-mapped), ``inbound`` (inbox + watcher).
Shared: ``wire`` (datagram format), ``fec`` (per-object Reed-Solomon plans),
``manifest`` (size, hash, signature), ``settings``. Wiring: ``connector``
(``type: diode``), ``cli`` (``hub bridge …``). Test double: ``relay``.
"""
