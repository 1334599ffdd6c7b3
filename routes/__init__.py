"""Routes: the YAML route language and its durable execution on the message backbone.

- ``language``: the step schemas the config loader checks routes against;
- ``engine``: compiled routes, step semantics, delivery handling (idempotency,
  retries, park, dead letters, await/correlation, synchronous endpoint routes);
- ``runtime``: ``Hub`` (assembly from config, worker threads, scheduler, ops
  queries: trace, dead letters, progress);
- ``middleware``: hooks around processing, and the Prometheus metrics;
- ``progress``: progress records and masking for the one-window platforms;
- ``ids``: deterministic ids of emitted messages;
- ``cli``: ``hub dlq``, ``hub trace``, ``hub send``.

The broker (``core.broker``) and the store (``core.store``) are in ``core``.
"""
