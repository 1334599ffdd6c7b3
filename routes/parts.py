"""What this package adds to the hub: the step kinds (``routes.steps``) and the
``routes:``, ``checklists:`` and ``tenants:`` config sections. Named in the ``bdchub.parts``
entry-point group (see ``core.registry``)."""

from bdchub.core.config import register_section

register_section("routes", "bdchub.routes.compiler:SCHEMA", required=True,
                 check="bdchub.routes.compiler:check_section")
register_section("checklists",
                 "bdchub.routes.steps.domain.require_materials:CHECKLISTS_SCHEMA")
register_section("tenants", "bdchub.routes.tenants:SCHEMA",
                 check="bdchub.routes.tenants:check_section")
