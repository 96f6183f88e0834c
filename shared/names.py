"""Names of orchestrations and activities, shared by their callers, their registrations and the tests."""

from typing import Final

# Orchestrations
SHUTDOWN_ORCHESTRATOR: Final = "shutdown_orchestrator"
RECONCILE_ORCHESTRATOR: Final = "reconcile_orchestrator"
COMPUTE_PLAN_ORCHESTRATOR: Final = "compute_plan_orchestrator"  # one per subscription: plans its workspaces
COMPUTE_SUBSCRIPTION_ORCHESTRATOR: Final = "compute_subscription_orchestrator"  # one per subscription: runs them
COMPUTE_WORKSPACE_ORCHESTRATOR: Final = "compute_workspace_orchestrator"  # one per workspace: steps its ledger
SCORING_ORCHESTRATOR: Final = "scoring_orchestrator"
SCORING_WAVE_ORCHESTRATOR: Final = "scoring_wave_orchestrator"

# External events
NOTICE_EVENT: Final = "notice"  # raised on a workspace orchestration after a heads-up link changed its record

# Activities (verb_noun)
OPEN_RECONCILE: Final = "open_reconcile"
PLAN_COMPUTE_NOTICE: Final = "plan_compute_notice"  # the heads-up's lead time of a shutdown run (issue 23)
SEND_COMPUTE_NOTICES: Final = "send_compute_notices"  # the notify phase: one message per owner per run
PLAN_COMPUTE_WORKSPACE: Final = "plan_compute_workspace"
STEP_COMPUTE_WORKSPACE: Final = "step_compute_workspace"
FINISH_COMPUTE_WORKSPACE: Final = "finish_compute_workspace"
ASSEMBLE_COMPUTE_REPORT: Final = "assemble_compute_report"
PLAN_SCORING_CHUNKS: Final = "plan_scoring_chunks"
REALIGN_SCORING_CHUNKS: Final = "realign_scoring_chunks"
LOAD_SCORING_WAVE: Final = "load_scoring_wave"
SAVE_SCORING_WAVE: Final = "save_scoring_wave"
DELETE_SCORING_WAVES: Final = "delete_scoring_waves"
SCORE_CHUNK: Final = "score_chunk"
COMMIT_PREDICTIONS: Final = "commit_predictions"
RECORD_SCORING_ERROR: Final = "record_scoring_error"
