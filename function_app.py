"""The Functions app: composes the blueprints of triggers, orchestrations and activities, nothing else.

Each module holds its own Blueprint; the only wiring besides is the settings' Key Vault resolver, and handing the
composed app to the OpenAPI document and the health probe, which describe it.
"""

import azure.durable_functions as df
import azure.functions as func

from activities import compute as compute_activities
from activities import schedules as schedules_activities
from activities import scoring as scoring_activities
from orchestrations import compute_fanout as compute_fanout_orchestrations
from orchestrations import reconcile as reconcile_orchestrations
from orchestrations import scoring as scoring_orchestrations
from orchestrations import shutdown as shutdown_orchestrations
from shared import keyvault
from triggers import dashboard, health, measured, model_http, notices, openapi, schedules, scoring, shutdown

keyvault.install()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
for module in (
    dashboard,
    health,
    measured,
    model_http,
    notices,
    openapi,
    schedules,
    scoring,
    shutdown,
    compute_fanout_orchestrations,
    reconcile_orchestrations,
    scoring_orchestrations,
    shutdown_orchestrations,
    compute_activities,
    schedules_activities,
    scoring_activities,
):
    app.register_functions(module.bp)
openapi.document(app)  # the document lists every HTTP function registered above
health.report_functions(app)  # /api/health names every function registered above
