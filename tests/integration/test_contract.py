"""The HTTP contract checked from outside: schemathesis (pinned in the dev lock) reads the app's own
`/api/openapi.json` on devhost and sends what it generates from it, for every operation (examples, coverage and
fuzzing phases, `--checks all`, a fixed seed). No answer may be a 5xx, no schema-valid request may be refused and
no invalid one accepted; status codes, content types and bodies must be the documented ones.

The app runs with its compute calls on the ARM, identity and prices stand-ins, so the valid requests it accepts
(a shutdown, a reconcile, a preview) run for real without reaching Azure. Failures print schemathesis' own report
with a curl line to reproduce each one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from devhost.standins.arm import ArmStandin
from devhost.standins.identity import IdentityStandin
from devhost.standins.prices import PricesStandin
from devhost.standins.tls import make_local_tls
from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost
from tests.helpers.standins import ca_bundle_with, compute_settings

pytestmark = pytest.mark.integration

SEED = 7
MAX_EXAMPLES = 30  # per operation and phase: about a minute on a quiet 2-core machine
CONFIG = Path(__file__).with_name("schemathesis.toml")
JUNIT = APP_ROOT / "reports" / "schemathesis.xml"
SUB = "0a1b2c3d-0000-4000-8000-00000000c0de"
FLEET = {
    "location": "westeurope",
    "workspaces": [
        {
            "subscription": SUB,
            "resource_group": "rg-contract",
            "name": name,
            "computes": [
                {
                    "name": f"ci-{name}",
                    "tags": {"compute-schedule": "office"},
                    "properties": {"computeType": "ComputeInstance", "properties": {"state": "Running"}},
                }
            ],
        }
        for name in ("ws-a", "ws-b")
    ],
}
SCHEDULES = [
    {"name": "office", "timezone": "Europe/Berlin", "periods": [{"days": "mon-fri", "begin": "08:00", "end": "19:00"}]}
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("contract")
    tls = make_local_tls(data / "tls")
    ca_bundle = ca_bundle_with(tls, data / "ca-bundle.pem")
    with (
        IdentityStandin() as identity,
        ArmStandin(FLEET, tls, transition_seconds=0.1) as arm,
        PricesStandin() as prices,
    ):
        settings = {
            **compute_settings(identity, arm, FLEET, ca_bundle),
            "DATA_STORAGE": "UseDevelopmentStorage=true",
            "SHUTDOWN_SCHEDULE": "0 0 0 1 1 *",  # 1 January never comes during a test
            "SHUTDOWN_POLL_SECONDS": "1",
            "AML_POLLING_INTERVAL_SECONDS": "0.2",
            "COMPUTE_SCHEDULES": json.dumps(SCHEDULES),
            "RECONCILE_TIMER": "false",
            "PRICES_ENDPOINT": prices.url,
        }
        running = start_devhost(data / "host", settings, workers=1)
        try:
            yield running
        finally:
            running.stop()


def test_schemathesis_finds_no_contract_violation_in_any_operation(host: RunningHost, tmp_path: Path) -> None:
    JUNIT.parent.mkdir(exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{host.base_url}/api/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--header",
        f"x-functions-key: {host.key}",
        "--output-truncate",
        "true",
        "--report",
        "junit",
        "--report-junit-path",
        str(JUNIT),
    ]
    began = time.monotonic()
    # In a directory of its own: schemathesis keeps a cache (.schemathesis/) where it runs.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    seconds = time.monotonic() - began
    output = result.stdout + result.stderr
    print(f"schemathesis: {seconds:.0f} s, seed {SEED}, {MAX_EXAMPLES} examples per operation and phase")
    assert result.returncode == 0, output[-12_000:]
    # Every operation of the document was tested (schemathesis leaves out the one serving the document itself).
    document = host.request("GET", "/api/openapi.json", key=False).json()
    operations = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    tested = {case.get("name") for case in ElementTree.parse(JUNIT).getroot().iter("testcase")}
    assert tested == operations - {"GET /api/openapi.json"}
