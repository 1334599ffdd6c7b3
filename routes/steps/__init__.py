"""The step kinds of the route language, registered by name.

Each kind lives in one module with its schema, compilation and runner (see
``routes.steps.base.StepKind``); ``STEP_KINDS`` maps the YAML key to it and
imports the module on first use. Another package adds a kind from its
``parts`` module: ``STEP_KINDS.register("mystep", "mypkg.steps:KIND")``.
"""

from __future__ import annotations

from bdchub.core.i18n import _
from bdchub.core.registry import Registry

from .base import StepKind

STEP_KINDS: Registry[StepKind] = Registry(
    "step",
    unknown=lambda name, hint, known: _("unknown step '{kind}'{hint}; steps are: {kinds}",
                                        kind=name, hint=hint, kinds=known))

for _name, _module in (
    ("validate", "validate"), ("map", "map"), ("filter", "filter"), ("choice", "choice"),
    ("enrich", "enrich"), ("to", "to"), ("split", "split"), ("await", "await_"),
    ("publish", "publish"), ("wire_tap", "wire_tap"), ("throttle", "throttle"),
    ("set", "set"), ("require_materials", "domain.require_materials"),
    ("require_stage", "domain.require_stage"), ("require_newer", "domain.require_newer"),
    ("match_name", "domain.match_name"),
    ("render_notice", "domain.render_notice"), ("case_submitter", "domain.case_submitter"),
    ("resume_held", "domain.resume_held"), ("each", "each"), ("audit", "audit"),
    ("dispatch", "dispatch"),
    ("report_hops", "report_hops"),
):
    STEP_KINDS.register(_name, f"bdchub.routes.steps.{_module}:KIND")
