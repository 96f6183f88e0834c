"""The one home of what tests and benchmarks share beyond starting devhost (that is `tests.devhost_runner`).

`events`: Event Grid events and webhook deliveries; `storage`: blob clients, uploads and downloads against a
host's Azurite; `scoring`: scoring runs found through the Durable HTTP API, and the reference input/predictions;
`processes`: devhost's worker processes; `standins`: managed identity, TLS trust and ARM settings that point
the real Azure SDKs at the stand-ins. Benchmarks import from here too, so a benchmark and the test that
proves the same path post the same events and read the same blobs.
"""
