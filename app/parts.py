"""What the assembly floor adds to the hub: the ``pollers:``, ``reconcile:`` and
``metrics:`` config sections. Named in the ``bdchub.parts`` entry-point group (see
``core.registry``)."""

from bdchub.console.pages import STATUS_SOURCES
from bdchub.console.statistics import STATS_SOURCES
from bdchub.core.config import register_section

register_section("pollers", "bdchub.app.pollers:SCHEMA",
                 check="bdchub.app.pollers:check_section")
register_section("reconcile", "bdchub.app.reconciler:SCHEMA",
                 check="bdchub.app.reconciler:check_section")
register_section("metrics", "bdchub.app.metrics:SCHEMA",
                 check="bdchub.app.metrics:check_section")

# The console's overview shows what hub status shows (the console sits below app).
STATUS_SOURCES.register("hub", "bdchub.app.status:status")
# The console's statistics page shows what hub stats shows (and exports as it does).
STATS_SOURCES.register("report", "bdchub.app.stats_cli:report")
STATS_SOURCES.register("export", "bdchub.app.stats_cli:export")
