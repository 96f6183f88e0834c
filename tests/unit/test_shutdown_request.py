"""`POST /api/shutdown` body validation: every 400 case names its field; good bodies become the run's input."""

import pytest

from shared.compute.shutdown_run import ShutdownRun, default_run
from shared.errors import RequestFieldError
from shared.settings import ShutdownSettings
from shared.web.inputs import parse_shutdown_body

ENV = {
    "AML_WORKSPACES": "sub-1/rg-dev/ws-research, sub-1/rg-prod/ws-prod, sub-2/rg-x/ws-prod",
    "SHUTDOWN_DRY_RUN": "false",
    "SHUTDOWN_STOP_TIMEOUT_SECONDS": "600",
}
SETTINGS = ShutdownSettings.from_env(ENV)

CONFIGURED = "sub-1/rg-dev/ws-research, sub-1/rg-prod/ws-prod, sub-2/rg-x/ws-prod, ws-research"
BAD = [
    ("not json", "{dry_run: true}", "body", 'body: expected JSON such as {"dry_run": true}, got text that is not JSON'),
    ("array", "[1, 2]", "body", "body: expected a JSON object, got an array"),
    ("string", '"stop"', "body", 'body: expected a JSON object, got "stop"'),
    ("unknown field", '{"dryrun": true}', "dryrun", "dryrun: unknown field; accepted fields: dry_run, workspaces"),
    ("dry_run string", '{"dry_run": "yes"}', "dry_run", 'dry_run: expected true or false, got "yes"'),
    ("dry_run number", '{"dry_run": 1}', "dry_run", "dry_run: expected true or false, got 1"),
    ("dry_run null", '{"dry_run": null}', "dry_run", "dry_run: expected true or false, got null"),
    ("workspaces string", '{"workspaces": "ws-research"}', "workspaces", "workspaces: expected an array of strings"),
    ("workspaces empty", '{"workspaces": []}', "workspaces", "workspaces: expected at least one workspace"),
    (
        "workspace number",
        '{"workspaces": ["ws-research", 3]}',
        "workspaces[1]",
        "workspaces[1]: expected a string, got 3",
    ),
    (
        "workspace blank",
        '{"workspaces": [" "]}',
        "workspaces[0]",
        f'expected one of the configured workspaces (AML_WORKSPACES): {CONFIGURED}, got " "',
    ),
    ("workspace unknown", '{"workspaces": ["ws-research", "ws-nope"]}', "workspaces[1]", 'got "ws-nope"'),
    (
        "workspace ambiguous",
        '{"workspaces": ["ws-prod"]}',
        "workspaces[0]",
        "'ws-prod' is ambiguous (2 workspaces have that name): name it by its key",
    ),
    ("workspace padded", '{"workspaces": [" ws-research"]}', "workspaces[0]", 'got " ws-research"'),
    (
        "include object",
        '{"include": {"a": 1}}',
        "include",
        "include: expected an array of non-blank strings, got an object",
    ),
    (
        "exclude item null",
        '{"exclude": ["ci-*", null]}',
        "exclude[1]",
        "exclude[1]: expected a non-blank string, got null",
    ),
    (
        "notice negative",
        '{"notice_minutes": -1}',
        "notice_minutes",
        "notice_minutes: expected a number from 0 to 1440, got -1",
    ),
    ("notice over a day", '{"notice_minutes": 99999}', "notice_minutes", "from 0 to 1440, got 99999"),
    (
        "notice string",
        '{"notice_minutes": "30"}',
        "notice_minutes",
        'notice_minutes: expected a finite number, got "30"',
    ),
    ("notice null", '{"notice_minutes": null}', "notice_minutes", "got null"),
    (
        "too many patterns",
        '{"include": [' + ",".join(['"p"'] * 51) + "]}",
        "include",
        "include: expected at most 50 items, got 51",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_bodies_name_the_field(body, field, message):
    with pytest.raises(RequestFieldError) as err:
        parse_shutdown_body(body.encode(), SETTINGS)
    assert err.value.field == field
    assert message in str(err.value)
    assert err.value.to_dict() == {"error": str(err.value), "field": field}


@pytest.mark.parametrize("body", [None, b"", b"  \n", b"{}"])
def test_no_body_means_every_workspace_and_the_configured_defaults(body):
    run = parse_shutdown_body(body, SETTINGS)
    assert run.workspaces == ("sub-1/rg-dev/ws-research", "sub-1/rg-prod/ws-prod", "sub-2/rg-x/ws-prod")
    assert run.dry_run is False
    assert run.stop_timeout_seconds == 600
    assert run.trigger == "http"


def test_full_body():
    body = (
        b'{"dry_run": true, "workspaces": ["ws-research", "sub-2/rg-x/ws-prod", "ws-research"],'
        b' "include": ["ci-*"], "exclude": [" *prod* "]}'
    )
    run = parse_shutdown_body(body, SETTINGS)
    assert run.dry_run is True
    assert run.workspaces == ("sub-1/rg-dev/ws-research", "sub-2/rg-x/ws-prod")
    assert run.include == ("ci-*",)
    assert run.exclude == ("*prod*",)
    assert ShutdownRun.from_dict(run.to_dict()) == run


def test_timer_run_uses_settings():
    run = default_run(ShutdownSettings.from_env({**ENV, "SHUTDOWN_DRY_RUN": "true", "SHUTDOWN_MODE": "opt-in"}))
    assert (run.trigger, run.dry_run, run.mode) == ("timer", True, "opt-in")
    assert len(run.workspaces) == 3


@pytest.mark.parametrize(
    ("body", "minutes"), [(b"{}", 30.0), (b'{"notice_minutes": 0}', 0.0), (b'{"notice_minutes": 2.5}', 2.5)]
)
def test_notice_minutes_come_from_the_body_else_from_notice_minutes(body, minutes):
    run = parse_shutdown_body(body, ShutdownSettings.from_env({**ENV, "NOTICE_MINUTES": "30"}))
    assert run.notice_minutes == minutes
    assert ShutdownRun.from_dict(run.to_dict()) == run


def test_the_timer_run_takes_notice_minutes_from_the_settings():
    assert default_run(ShutdownSettings.from_env({**ENV, "NOTICE_MINUTES": "0.5"})).notice_minutes == 0.5
