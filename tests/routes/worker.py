"""A hub worker process for reliability tests: ``python -m tests.routes.worker CONFIG``.

Loads CONFIG with the real loader, serves until SIGTERM, and can be killed with
SIGKILL at any moment. Prints READY once consuming.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--prefix", default="bdchub")
    parser.add_argument("--lease", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from bdchub.core.config import load
    from bdchub.routes.runtime import Hub
    from tests.routes.sink import register

    register()
    hub = Hub.from_config(load(args.config), prefix=args.prefix, visibility_timeout=args.lease,
                          tick_interval=0.2, redeliver_after=2.0)
    hub.serve_forever(ready=lambda: print("READY", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
