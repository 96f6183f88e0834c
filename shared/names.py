"""Names of orchestrations and activities, shared by their callers, their registrations and the tests."""

from typing import Final

# Orchestrations
SHUTDOWN_ORCHESTRATOR: Final = "shutdown_orchestrator"
STOP_MONITOR_ORCHESTRATOR: Final = "stop_monitor_orchestrator"
SCORING_ORCHESTRATOR: Final = "scoring_orchestrator"
SCORING_WAVE_ORCHESTRATOR: Final = "scoring_wave_orchestrator"

# Activities (verb_noun)
LIST_COMPUTE_INSTANCES: Final = "list_compute_instances"
STOP_COMPUTE_INSTANCE: Final = "stop_compute_instance"
GET_COMPUTE_STATE: Final = "get_compute_state"
SAVE_SHUTDOWN_REPORT: Final = "save_shutdown_report"
PLAN_SCORING_CHUNKS: Final = "plan_scoring_chunks"
SCORE_CHUNK: Final = "score_chunk"
COMMIT_PREDICTIONS: Final = "commit_predictions"
