"""Names of orchestrations and activities, shared by their callers, their registrations and the tests."""

from typing import Final

# Orchestrations
SHUTDOWN_ORCHESTRATOR: Final = "shutdown_orchestrator"
RECONCILE_ORCHESTRATOR: Final = "reconcile_orchestrator"
SCORING_ORCHESTRATOR: Final = "scoring_orchestrator"
SCORING_WAVE_ORCHESTRATOR: Final = "scoring_wave_orchestrator"

# Activities (verb_noun)
LIST_COMPUTE_INSTANCES: Final = "list_compute_instances"
ACT_ON_COMPUTE_INSTANCES: Final = "act_on_compute_instances"
READ_COMPUTE_STATES: Final = "read_compute_states"
LOAD_RECONCILE_STATE: Final = "load_reconcile_state"
SAVE_RECONCILE_STATE: Final = "save_reconcile_state"
PRICE_COMPUTE_SIZES: Final = "price_compute_sizes"
SAVE_SHUTDOWN_REPORT: Final = "save_shutdown_report"
PLAN_SCORING_CHUNKS: Final = "plan_scoring_chunks"
REALIGN_SCORING_CHUNKS: Final = "realign_scoring_chunks"
LOAD_SCORING_WAVE: Final = "load_scoring_wave"
SAVE_SCORING_WAVE: Final = "save_scoring_wave"
DELETE_SCORING_WAVES: Final = "delete_scoring_waves"
SCORE_CHUNK: Final = "score_chunk"
COMMIT_PREDICTIONS: Final = "commit_predictions"
RECORD_SCORING_ERROR: Final = "record_scoring_error"
