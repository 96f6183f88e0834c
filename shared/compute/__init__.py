"""The compute job: Azure ML compute instances listed, decided on and stopped or started through ARM.

`arm` talks to ARM (list, stop, start; no waiting), `policy` decides the nightly stop, `schedules` and `reconcile`
the working hours, `prices` and `savings` what a stop saved, `report` what a run did, `shutdown_run` what a run is
asked to do. Imports the platform modules of `shared/` only; never `shared.scoring`.
"""
