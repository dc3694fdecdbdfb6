"""`pollwatch scan`: the detectors sanitize uses, as a check anyone can run on a recording or a
database before sharing it; and sanitize's refusal to keep an output the scan does not pass."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main

from pollwatch.sources.analysis import analyze_recordings
from pollwatch.core.config import Config
from pollwatch.share.secrets import Detectors, is_random
from pollwatch.core.redact import is_sensitive_header, is_sensitive_key, is_sensitive_name

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE.parent / "recordings"
sys.path.insert(0, str(HERE / "data"))
import planted  # tests/data/planted.py: the planted-secrets corpus


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory) -> dict[str, Path]:
    return planted.write_all(tmp_path_factory.mktemp("planted"))


def run_scan(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(main, ["scan", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    assert not any(value in result.output for value in planted.SECRETS.values())  # previews only
    return result.exit_code, json.loads(result.stdout)


# --- recordings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flows", "har", "cassette"])
def test_scan_finds_planted_secrets_and_passes_the_sanitized_copy(planted_files, kind, tmp_path):
    code, hits = run_scan(str(planted_files[kind]))
    assert code == 1
    where = {h["location"] for h in hits}
    assert {"request.header Authorization", "request.header x-Auth-Token", "request.query client_secret",
            "response.json $.user.profile.iban", "request.form password", "response.body"} <= where
    assert {h["rule"] for h in hits} >= {"sensitive-header", "sensitive-param", "sensitive-key", "jwt", "email",
                                          "high-entropy", "auth-scheme", "known-token"}
    for fmt in ("flows", "har"):
        output = tmp_path / f"shared.{fmt}"
        assert CliRunner().invoke(main, ["sanitize", str(planted_files[kind]), "-o", str(output)]).exit_code == 0
        assert run_scan(str(output)) == (0, [])


def test_scan_reports_what_only_har_keeps(planted_files):
    """Cookies lists, page titles and initiator URLs: HAR-only places, dropped by sanitize."""
    _, hits = run_scan(str(planted_files["har"]))
    where = {h["location"] for h in hits}
    assert {"request.url userinfo", "har $.request.cookies sid", "har log $.pages[0].title [access_token]"} <= where


def test_clean_recordings_scan_clean():
    result = CliRunner().invoke(main, ["scan", str(RECORDINGS)])
    assert result.exit_code == 0, result.output
    assert "0 possible secret(s)" in result.output


def test_forbidden_rule_makes_sanitize_refuse(planted_files, tmp_path):
    """A value the redaction does not touch (a customer's name in a JSON field) but the user's
    rule says must never leave: scan finds it, sanitize refuses and leaves no file behind."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("forbidden:\n  - 'u-90\\d\\d'\n")
    assert run_scan(str(planted_files["flows"]), "--rules", str(rules))[0] == 1
    folder = tmp_path / "out"
    folder.mkdir()
    result = CliRunner().invoke(main, ["sanitize", str(planted_files["flows"]), "-o", str(folder / "shared.flows"),
                                                   "--rules", str(rules)])
    assert result.exit_code == 1
    assert "refusing to write" in result.output and "forbidden" in result.output
    assert list(folder.iterdir()) == []


# --- databases -------------------------------------------------------------------------------------

def test_database_with_bodies_is_flagged_and_without_is_clean(planted_files, tmp_path):
    clean, bodies = tmp_path / "clean.sqlite", tmp_path / "bodies.sqlite"
    analyze_recordings([planted_files["flows"]], clean)
    analyze_recordings([planted_files["flows"]], bodies, config=Config(keep_bodies=True))
    assert run_scan(str(clean)) == (0, [])
    code, hits = run_scan(str(bodies), str(clean))
    assert code == 1 and {(h["location"], h["rule"]) for h in hits} == {("body $.owner.email", "sensitive-key")}
    assert all(h["file"] == str(bodies) and h["flow_id"].startswith("polls:") for h in hits)


def test_foreign_database_is_refused_in_one_line(tmp_path):
    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("create table things (name text)")
    result = CliRunner().invoke(main, ["scan", str(foreign)])
    assert result.exit_code == 1 and "not a pollwatch database" in result.output
    assert result.output.strip().count("\n") == 0


# --- detectors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "secret"), [
    ("id 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", False),  # UUID
    ("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", False),
    ("GetSubscriptionInfo3Min and ExpressRouteCircuits2019", False),
    ("ua 184-linuxkit-x86_64-with-Ubuntu-18", False),
    ("key hE7qL2mZ9xT4vB8nR3kW6yPaQ1sD", True),
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", True),
    ("a Bearer or PoP token is missing", False),
    ("use Bearer abcdef.123456 please", True),
    ("mail bob@corp.example", True),
    ("https://REDACTED@api.test/x?token=REDACTED", False),
])
def test_value_detectors(text, secret):
    assert bool(Detectors().spans(text)) is secret


def test_entropy_rule_spares_ids_it_is_told_about():
    token = "Jb7Qx2Lm9Zr4Tk8Wn3Yc6Vd"
    assert is_random(token)
    assert Detectors().spans(f"/jobs/{token}") and not Detectors(protected=frozenset({token})).spans(f"/jobs/{token}")


@pytest.mark.parametrize(("rule", "name", "sensitive"), [
    (is_sensitive_header, "Authorization", True), (is_sensitive_header, "proxy-authorization", True),
    (is_sensitive_header, "X-My-Session", True), (is_sensitive_header, "X-Forwarded-For", True),
    (is_sensitive_header, "Cache-Control", False), (is_sensitive_header, "ETag", False),
    (is_sensitive_header, "X-Request-Id", False), (is_sensitive_header, "Operation-Location", False),
    (is_sensitive_header, "x-ms-client-request-id", False), (is_sensitive_header, "X-Cache-Key", False),
    (is_sensitive_name, "state", True), (is_sensitive_name, "X-Amz-Credential", True),
    (is_sensitive_name, "api-version", False),
    (is_sensitive_key, "state", False), (is_sensitive_key, "code", False), (is_sensitive_key, "status", False),
    (is_sensitive_key, "accessToken", True), (is_sensitive_key, "card_number", True),
    (is_sensitive_key, "ipAddress", True), (is_sensitive_key, "discard", False), (is_sensitive_key, "keySource", False),
    (is_sensitive_key, "tokenType", False), (is_sensitive_key, "name", False),
])
def test_name_rules(rule, name, sensitive):
    assert rule(name) is sensitive
