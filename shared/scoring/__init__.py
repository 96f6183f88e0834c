"""The scoring job: a CSV in blob storage scored in byte-range chunks and committed once per version, and the
model behind it (also served in real time).

`events` turns Event Grid deliveries into runs, `csv_chunks`/`chunk_bytes`/`chunk_scoring` plan and score chunks,
`commit` commits the predictions exactly once, `error_document` and `errors_csv` say what could not be scored,
`model` loads the ONNX model and its card, `realtime` answers `/api/weight` and `/api/score`. Imports the platform
modules of `shared/` only; never `shared.compute`.
"""
