"""The Functions app: composes the blueprints of triggers, orchestrations and activities, nothing else."""

import azure.durable_functions as df
import azure.functions as func

import activities
import orchestrations
import triggers

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(triggers.bp)
app.register_functions(orchestrations.bp)
app.register_functions(activities.bp)
