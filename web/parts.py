"""What this package adds to the hub: the ``inbound:`` config section. Named in
the ``bdchub.parts`` entry-point group (see ``core.registry``)."""

from bdchub.core.config import register_section

register_section("inbound", "bdchub.web.config_schema:INBOUND_SCHEMA",
                 check="bdchub.web.config_check:check_section")
