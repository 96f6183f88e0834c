"""A setting in local.settings.json may be a Key Vault reference: devhost runs the app with it, as Azure would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.devhost_runner import APP_ROOT, RunningHost, start_devhost

pytestmark = pytest.mark.integration

SECRET_SCHEDULE = "0 0 0 1 1 *"


@pytest.fixture(scope="module")
def vault_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    data = tmp_path_factory.mktemp("vault-devhost")
    settings = {
        "DATA_STORAGE": "UseDevelopmentStorage=true",
        # Both reference syntaxes; the values live only in the Key Vault stand-in.
        "SHUTDOWN_SCHEDULE": "@Microsoft.KeyVault(VaultName=devvault;SecretName=shutdown-schedule)",
        "MODEL_URI": "@Microsoft.KeyVault(SecretUri=https://devvault.vault.azure.net/secrets/model-uri/)",
        "SCORE_MAX_BODY_BYTES": "@Microsoft.KeyVault(VaultName=devvault;SecretName=missing-secret)",
        "DEVHOST_KEYVAULT_SECRETS": json.dumps(
            {
                "shutdown-schedule": SECRET_SCHEDULE,
                "model-uri": str(APP_ROOT / "models" / "height-weight"),
            }
        ),
    }
    host = start_devhost(data, settings, workers=1)
    yield host
    host.stop()


def test_references_resolve_through_the_vault(vault_host: RunningHost) -> None:
    response = vault_host.request("GET", "/api/weight?height=138")
    assert response.status_code == 200
    card = json.loads((APP_ROOT / "models" / "height-weight" / "card.json").read_text())
    golden = next(g["predicted_weight"] for g in card["golden"] if g["height"] == 138.0)
    # The model came from the path held in the vault; the timer's schedule too (the host started).
    assert response.json() == {"response": [golden]}


def test_unresolvable_reference_fails_clearly_without_the_value(vault_host: RunningHost) -> None:
    response = vault_host.request("POST", "/api/score", data=json.dumps({"rows": [{"height": 150}]}))
    assert response.status_code == 500
    log = vault_host.log_text()
    assert "SCORE_MAX_BODY_BYTES" in log and "missing-secret" in log
    # The resolved secrets never show in the log.
    assert str(Path("models") / "height-weight") not in response.text
    assert SECRET_SCHEDULE not in log
