"""End to end with a widely used third-party poller: azure-core's LROPoller + LROBasePolling
drive the sample API's Azure-style operations (202 + absolute Operation-Location, PascalCase
status words) through a real mitmdump with the pollwatch addon."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("azure.core", reason="azure-core is not installed (it is in the 'test' extra)")
import requests  # noqa: E402  (a dependency of azure-core's RequestsTransport)
from azure.core import PipelineClient  # noqa: E402
from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.core.pipeline.transport import RequestsTransport  # noqa: E402
from azure.core.polling import LROPoller  # noqa: E402
from azure.core.polling.base_polling import LROBasePolling  # noqa: E402
from azure.core.rest import HttpRequest  # noqa: E402

from helpers import live_job_rows, wait_for
from pollwatch.demo.api import SampleAPI  # noqa: E402

POLL_DELAY_S = 0.1          # LROBasePolling(timeout=...) is the delay between polls (no Retry-After sent)
RESULT_TIMEOUT_S = 15



@pytest.fixture
def client(api, proxy):
    session = requests.Session()
    session.trust_env = False            # no HTTP(S)_PROXY/NO_PROXY from the environment
    session.proxies = {"http": proxy.url, "https": proxy.url}
    with PipelineClient(api.url, transport=RequestsTransport(session=session, session_owner=False)) as pipeline_client:
        yield pipeline_client
    session.close()


def begin(client: PipelineClient, api: SampleAPI, fault: str) -> tuple[LROPoller, str]:
    """What a generated SDK's begin_* method does: send the initial request through the client's
    pipeline, then hand the PipelineResponse to an LROPoller with LROBasePolling."""
    request = HttpRequest("POST", f"{api.url}/api/translations?fault={fault}")
    initial = client._pipeline.run(request, stream=False)
    assert initial.http_response.status_code == 202, initial.http_response.text()
    operation = initial.http_response.headers["Operation-Location"]
    assert operation.startswith(api.url + "/api/operations/"), operation
    job_id = urlsplit(operation).path.rsplit("/", 1)[-1]
    poller = LROPoller(client, initial, lambda response: response.http_response.json(),
                       LROBasePolling(timeout=POLL_DELAY_S))
    return poller, job_id


def job_rows(proxy, job_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return live_job_rows(proxy.db, job_id, ready)


def finished(rows: dict[str, Any]) -> bool:
    """The terminal poll is stored and every counted poll has its row."""
    return rows["job"]["terminal_state"] is not None and len(polls_of(rows)) >= (rows["job"]["polls"] or 0)


def polls_of(rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in rows["polls"] if p["kind"] == "poll"]


def alerts_about(proxy, job_id: str) -> list[str]:
    return [line for line in proxy.lines
            if f"job {job_id}:" in line and ("] warning:" in line or "] error:" in line)]


def test_healthy_operation_succeeds_and_is_tracked_without_warnings(client, api, proxy):
    poller, job_id = begin(client, api, "healthy")
    result = poller.result(timeout=RESULT_TIMEOUT_S)
    assert poller.status() == "Succeeded" and poller.done()
    assert result == {"id": job_id, "status": "Succeeded"}

    rows = job_rows(proxy, job_id, finished)
    assert rows["job"] is not None, proxy.output()[-3000:]
    assert json.loads(rows["job"]["states"]) == ["queued", "running", "succeeded"], rows["job"]
    assert rows["job"]["terminal_state"] == "succeeded"
    assert len(polls_of(rows)) >= 3, rows
    assert rows["findings"] == []
    assert alerts_about(proxy, job_id) == []


def test_cacheable_operation_status_is_flagged(client, api, proxy):
    poller, job_id = begin(client, api, "cached-status")
    # requests has no HTTP cache, so this poller still finishes; a cache in between would not.
    assert poller.result(timeout=RESULT_TIMEOUT_S)["status"] == "Succeeded"

    assert wait_for(proxy, f"status-cacheable job {job_id}:", 5), proxy.output()[-3000:]
    rows = job_rows(proxy, job_id, lambda r: finished(r) and "status-cacheable" in r["findings"])
    assert "status-cacheable" in rows["findings"], rows
    assert rows["job"]["terminal_state"] == "succeeded"


def test_failed_operation_raises_and_is_recorded_failed_without_false_warnings(client, api, proxy):
    poller, job_id = begin(client, api, "failed")
    with pytest.raises(HttpResponseError) as raised:
        poller.result(timeout=RESULT_TIMEOUT_S)
    assert poller.status() == "Failed", raised.value
    # azure-core surfaces the operation's error object from the final status body.
    assert "translation worker crashed" in str(raised.value), raised.value

    rows = job_rows(proxy, job_id, finished)
    assert rows["job"] is not None, proxy.output()[-3000:]
    assert rows["job"]["terminal_state"] == "failed", rows["job"]
    assert json.loads(rows["job"]["states"])[-1] == "failed", rows["job"]
    assert rows["findings"] == []
    assert alerts_about(proxy, job_id) == []
