"""What this package adds to the hub: the ``routes:`` and ``checklists:`` config
sections. Named in the ``bdchub.parts`` entry-point group (see ``core.registry``)."""

from bdchub.core.config import register_section

register_section("routes", "bdchub.routes.language:SECTION_SCHEMA", required=True,
                 check="bdchub.routes.language:check_section")
register_section("checklists", "bdchub.routes.language:CHECKLISTS_SCHEMA")
