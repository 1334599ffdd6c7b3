"""What the bridge adds to the hub: the ``diode`` connector type and the
``bridge:`` config section (what ``hub run`` watches on the receiving side).
Named in the ``bdchub.parts`` entry-point group (see ``core.registry``)."""

from bdchub.connectors.registry import register
from bdchub.core.config import register_section

register("diode", "bdchub.bridge.diode.connector:DiodeConnector")
register_section("bridge", "bdchub.bridge.publish:SCHEMA")
