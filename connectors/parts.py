"""What this package adds to the hub: the ``connectors:`` config section.

Its own connector types are registered in ``registry``; this module is named
in the ``bdchub.parts`` entry-point group (see ``core.registry``).
"""

from bdchub.core.config import register_section

from . import registry  # noqa: F401 - registers rest, soap, amqp, fake, hub

register_section("connectors", registry.SCHEMA, required=True,
                 check="bdchub.connectors.registry:check_section")
