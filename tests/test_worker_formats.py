"""Worker logs in each format pollwatch reads become the same WorkerEvents: JSON lines in the
shapes structlog, python-json-logger, pino and bunyan write, logfmt, and plain text read with a
user's regex; unreadable lines are counted once with an example."""

from __future__ import annotations

import pytest

from pollwatch.core.states import State
from pollwatch.errors import ReadError
from pollwatch.logs import FieldNames, RegexFormat, parse_time, read_worker_logs

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def only_event(path, **kwargs):
    result = read_worker_logs([path], **kwargs)
    assert result.bad == 0, result.bad_line()
    [event] = result.events
    return event


def test_structlog_json_lines_give_job_state_and_iso_time(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"event": "job.succeeded", "job_id": "e-1", "timestamp": '
                 '"2026-01-02T03:04:05.250Z", "level": "info"}\n')
    event = only_event(path)
    assert (event.job_id, event.state, event.ts) == ("e-1", State.SUCCEEDED, 1767323045.25)


def test_python_json_logger_lines_read_message_status_and_request_id(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"asctime": "2026-01-02 03:04:05,500", "levelname": "INFO", '
                 '"message": "export finished", "jobId": "e-2", "status": "COMPLETED", "request_id": "r-9"}\n')
    event = only_event(path)
    assert (event.job_id, event.state, event.operation_ids, event.message) == \
        ("e-2", State.SUCCEEDED, ["r-9"], "export finished")
    assert event.ts == 1767323045.5


def test_pino_lines_read_epoch_milliseconds_and_numeric_level(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"level": 30, "time": 1767323045123, "pid": 7, "hostname": "w1", '
                 '"msg": "job running", "job": "e-3", "state": "running"}\n')
    event = only_event(path)
    assert (event.ts, event.state, event.job_id) == (1767323045.123, State.RUNNING, "e-3")


def test_bunyan_lines_read_iso_time_and_traceparent(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"name": "worker", "level": 30, "time": "2026-01-02T03:04:05.000Z", '
                 f'"msg": "done", "id": "e-4", "status": "failed", "traceparent": "{TRACEPARENT}", "v": 0}}\n')
    event = only_event(path)
    assert event.state is State.FAILED and event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "4bf92f3577b34da6a3ce929d0e0e4736" in event.operation_ids


def test_logfmt_lines_unquote_values(tmp_path):
    path = write(tmp_path, "w.log", 'time=2026-01-02T03:04:05Z level=info msg="job done, all good" '
                 'job_id=e-5 state=succeeded operation_id=op-1\n')
    event = only_event(path)
    assert (event.message, event.job_id, event.operation_ids, event.state) == \
        ("job done, all good", "e-5", ["op-1"], State.SUCCEEDED)


def test_plain_text_is_read_with_a_regex_of_named_groups(tmp_path):
    path = write(tmp_path, "w.txt", "2026-01-02T03:04:05Z worker[7]: job e-6 is now Completed\n")
    event = only_event(path, fmt=RegexFormat(r"^(?P<ts>\S+) .*job (?P<job_id>\S+) is now (?P<state>\w+)"))
    assert (event.job_id, event.state, event.ts) == ("e-6", State.SUCCEEDED, 1767323045.0)


def test_a_regex_without_named_groups_is_refused():
    with pytest.raises(ReadError, match="named groups"):
        RegexFormat(r"\S+ job \S+")


def test_field_names_are_configurable_per_run(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"when": 1767323045, "task": {"uid": "t-1"}, "phase": "Baked"}\n')
    names = FieldNames(job=["task.uid"], state=["phase"], time=["when"], states={"Baked": "succeeded"})
    event = only_event(path, names=names)
    assert (event.job_id, event.state, event.ts) == ("t-1", State.SUCCEEDED, 1767323045.0)


def test_the_clock_offset_shifts_every_worker_timestamp(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-7", "state": "running"}\n')
    assert only_event(path, names=FieldNames(clock_offset=-2.5)).ts == 1767323042.5


@pytest.mark.parametrize("value, expected", [
    (1767323045, 1767323045.0), ("1767323045.5", 1767323045.5), (1767323045123, 1767323045.123),
    ("2026-01-02T03:04:05+01:00", 1767319445.0), ("2026-01-02T03:04:05", 1767323045.0), ("yesterday", None),
])
def test_times_are_iso_8601_epoch_seconds_or_milliseconds(value, expected):
    assert parse_time(value) == expected


def test_unreadable_lines_are_counted_and_the_first_is_kept_as_a_redacted_example(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-8", "state": "queued"}\n'
                 'Traceback: see https://api.test/x?token=s3cr3t\n{"job_id": "e-8", "state": "running"}\n'
                 '{not json\n')
    result = read_worker_logs([path])
    assert result.bad == 3 and len(result.events) == 1
    assert result.bad_example.source.endswith(":2") and "s3cr3t" not in result.bad_example.text
    assert result.bad_line().startswith("3 line(s) could not be read; first at")


def test_lines_about_no_job_are_skipped_not_counted(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "msg": "worker started", "pid": 3}\n')
    result = read_worker_logs([path])
    assert result.events == [] and result.bad == 0


def test_long_messages_are_bounded_and_urls_redacted(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-9", "state": "failed", "msg": "'
                 + "x" * 500 + ' https://h.test/?api_key=abc"}\n')
    event = only_event(path)
    assert len(event.message) == 200


def test_a_file_in_no_known_format_is_refused_with_its_name(tmp_path):
    path = write(tmp_path, "w.txt", "just some words\n")
    with pytest.raises(ReadError, match="w.txt"):
        read_worker_logs([path])


def test_a_step_named_in_a_free_text_event_message_is_not_a_state(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"timestamp": 1767323045, "job_id": "e-1", '
                 '"event": "chunk 1 of 4 upload complete", "level": "info"}\n')
    assert only_event(path).state is None


def test_an_http_status_code_is_not_a_state(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "request_id": "1", "event": "request finished", '
                 '"status": 202}\n')
    event = only_event(path)
    assert event.state is None and not event.terminal


@pytest.mark.parametrize("value, word", [("job.succeeded", "succeeded"), ("job_succeeded", "succeeded"),
                                         ("JobSucceeded", "Succeeded"), ("job.in_progress", "in_progress")])
def test_only_the_state_word_ending_an_identifier_is_kept(tmp_path, value, word):
    path = write(tmp_path, "w.jsonl", f'{{"ts": 1767323045, "job_id": "e-1", "event": "{value}"}}\n')
    assert only_event(path).state_word == word


def test_sensitive_pairs_and_authorization_values_in_messages_are_redacted(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-1", "state": "running", "msg": '
                 '"login password=hunter2 token=sk_live_1 Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}\n')
    message = only_event(path).message
    assert not any(s in message for s in ("hunter2", "sk_live_1", "eyJ")) and message.startswith("login password=")


def test_the_unreadable_line_example_hides_passwords_tokens_and_basic_credentials(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-1", "state": "queued"}\n'
                 "not json token=SECRET7 password=SECRET8 Authorization: Basic dXNlcjpTRUNSRVQ5\n")
    example = read_worker_logs([path]).bad_example.text
    assert not any(s in example for s in ("SECRET7", "SECRET8", "dXNlcjpTRUNSRVQ5"))


def test_an_operation_id_holding_a_bearer_token_is_stored_as_a_fingerprint(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-1", "state": "running", '
                 '"request_id": "Bearer eyJhbGciOiJIUzI1NiJ9.SECRET3.sig"}\n')
    [op] = only_event(path).operation_ids
    assert op.startswith("redacted-") and "SECRET3" not in op


@pytest.mark.parametrize("value", [1767323045123456, 1767323045123456789, "1767323045123456"])
def test_epoch_microseconds_and_nanoseconds_are_scaled_by_magnitude(value):
    assert parse_time(value) == pytest.approx(1767323045.123456)


def test_a_time_outside_2000_to_2100_makes_the_line_unreadable(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"ts": 3, "job_id": "e-1", "state": "succeeded", "msg": "uptime"}\n'
                 '{"ts": 1e300, "job_id": "e-1", "state": "running"}\n')
    result = read_worker_logs([path])
    assert result.events == [] and result.bad == 2


def test_an_empty_log_among_several_is_skipped_not_fatal(tmp_path):
    empty = write(tmp_path, "empty.log", "")
    good = write(tmp_path, "w.jsonl", '{"ts": 1767323045, "job_id": "e-1", "state": "queued"}\n')
    result = read_worker_logs([empty, good])
    assert result.skipped == [str(empty)] and len(result.events) == 1


def test_a_gzipped_log_is_refused_with_a_hint_to_decompress_it(tmp_path):
    import gzip

    path = tmp_path / "w.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"ts": 1767323045, "job_id": "e-1", "state": "queued"}\n'))
    with pytest.raises(ReadError, match="decompress it first"):
        read_worker_logs([path])
