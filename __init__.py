"""bdc-hub: the integration hub for Internet + real-estate registration (互联网+不动产登记).

The installed distribution provides this one package. Its floors, from the
ground up (docs/developing.md has the map; ``.importlinter`` enforces it):

- ``bdchub.schemas``, ``bdchub.core``: canonical messages and domain formats;
  envelope, errors, config checker, store, broker, audit, masking, sealing,
  hardened XML;
- ``bdchub.connectors``, ``bdchub.routes``, ``bdchub.web``, ``bdchub.bridge``:
  the parts, each registering its connector types, step kinds and config
  sections with their schema and builder;
- ``bdchub.app``: the running hub and its inputs under one lifecycle;
- ``bdchub.hub``: the ``hub`` command.

``bdchub.sandbox`` (simulated departments) and ``bdchub.demo`` ship for
``hub sandbox`` and ``hub demo``; no production module imports them.
"""

__version__ = "0.1.0"
