"""What the console adds to the hub: the ``console:`` config section and its
application under the inbound server's prefix (``web.mounts``). Named in the
``bdchub.parts`` entry-point group (see ``core.registry``)."""

from bdchub.core.config import register_section
from bdchub.web.mounts import MOUNTS

register_section("console", "bdchub.console.config:SCHEMA",
                 check="bdchub.console.config:check_section")
MOUNTS.register("console", "bdchub.console.pages:mount")
