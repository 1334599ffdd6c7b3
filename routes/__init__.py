"""Routes: the YAML route language and its durable execution on the message backbone.

- ``language``: the shape of a route and the vocabulary steps share;
- ``steps``: one module per step kind (schema, compilation, runner), registered
  by name in ``steps.STEP_KINDS``; ``steps.domain`` holds the kinds that know
  real-estate registration (``require_materials``);
- ``compiler``: config to compiled ``Route`` objects, every problem at its key
  path (``hub check`` and ``hub run`` use the same compiler);
- ``engine``: runs compiled routes over deliveries (idempotency, retries,
  park, dead letters, request/reply routes); ``run`` is one run's state;
- ``correlation``: the await machinery (waiting runs and their continuations);
- ``runtime``: ``Hub`` (assembly from config, worker threads, scheduler, ops
  queries: trace, dead letters, progress);
- ``middleware``: hooks around processing, and the Prometheus metrics;
- ``progress``: progress records for the one-window platforms;
- ``body``, ``headers``: reading and writing bodies; the hub's own headers;
- ``cli``: ``hub dlq``, ``hub trace``, ``hub send``.

The broker (``core.broker``) and the store (``core.store``) are in ``core``.
"""
