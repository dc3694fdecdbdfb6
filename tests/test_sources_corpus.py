"""The shared corpus beside the project (../shared/corpus): real recordings from other projects' test
suites. Every other-vendors file is read with all its interactions and the statuses it recorded;
the Azure SDK cassettes read exactly as they did before the readers were split by format."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pollwatch.sources.readers import expand, read

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OTHER_VENDORS = SHARED / "other-vendors"
AZURE = SHARED / "azure-sdk-cassettes"

# file: (format, interactions, first status, last status, times recorded rather than invented)
OTHER = {
    "fog-openstack.volume_snapshot_and_delete.yml": ("ruby-vcr", 22, 200, 404, True),
    "linodego.TestEventPoller_InstancePower.yaml": ("go-vcr", 21, 200, 200, False),
    "replicate-python.run.yaml": ("cassette", 13, 201, 200, True),
    "scaleway-sdk-go.test-wait-for-image.cassette.yaml": ("go-vcr", 9, 200, 204, True),
}

# statuses in recorded order, as the VCR.py reader gave them before this change
AZURE_STATUSES = {
    "test_analyze_healthcare.test_cancellation.yaml": "202 200 200 200 400",
    "test_cancel_translation.test_cancel_translation.yaml": "201 201 201 201 201 201 201 201 201 201 202 200 200 200",
    "test_certificates_client.test_crud_operations.yaml":
        "401 202 200 200 200 200 200 200 200 200 200 404 404 404 404 404 404 404 404 200 404",
    "test_cli_mgmt_network_express_route.test_network.yaml":
        "201 200 200 200 200 200 200 201 200 200 200 200 200 200 201 200 200 200 201 200 200 200 201 200 200 201 200"
        " 404 200 200 200 200 200 200 202 200 202 200 202 200 200 202 200",
    "test_mgmt_compute_vm.test_compute_vm.yaml":
        "201 200 200 201 200 200 201 200 200 201 200 200 200 200 201 200 200 200 200 200 200 200 200 200 202 200 200"
        " 202 200 200 202 200 200 202 200 200 200 200 200 202 200 200 202 200 200 202 200 200 202 200 200 200 200 200"
        " 200 202 200 200 200 200 200 200 200 202 200",
    "test_mgmt_cosmosdb.test_accounts_create.yaml": "404" + " 200" * 18,
    "test_mgmt_network.test_public_ip_addresses.yaml": "201 200 200 200 200 200 202 200 200",
    "test_mgmt_storage.test_storage_accounts.yaml": "200 202" + " 200" * 8,
}

needs_other_vendors = pytest.mark.skipif(not OTHER_VENDORS.is_dir(), reason=f"no shared corpus at {OTHER_VENDORS}")
needs_azure = pytest.mark.skipif(not AZURE.is_dir(), reason=f"no shared corpus at {AZURE}")


@needs_other_vendors
def test_the_other_vendors_folder_yields_its_four_recordings_and_nothing_else():
    assert sorted(p.name for p in expand([OTHER_VENDORS])) == sorted(OTHER)


@needs_other_vendors
@pytest.mark.parametrize("name", sorted(OTHER))
def test_each_other_vendor_recording_is_read_whole(name):
    kind, count, first, last, recorded = OTHER[name]
    recording = read(OTHER_VENDORS / name)
    statuses = [o.status for o in recording.observations]
    assert (recording.kind, len(statuses), statuses[0], statuses[-1]) == (kind, count, first, last)
    assert recording.synthetic_times is not recorded
    times = [o.response_ts for o in recording.observations]
    assert times == sorted(times)


@needs_other_vendors
def test_replicates_prediction_is_created_with_201():
    [create] = [o for o in read(OTHER_VENDORS / "replicate-python.run.yaml").observations if o.method == "POST"]
    assert urlsplit(create.url).path == "/v1/predictions" and create.status == 201
    assert json.loads(create.body)["urls"]["get"].endswith("/v1/predictions/azaq55dbukgxg6kubr4k6g3pby")


@needs_other_vendors
def test_every_operation_people_found_in_the_corpus_is_there_with_its_creation_status_and_polls():
    expected = json.loads((OTHER_VENDORS / "expected.json").read_text())
    for name, operations in expected.items():
        observations = read(OTHER_VENDORS / name).observations
        for operation in operations:
            method, path = operation["create"].split(" ", 1)
            created = [o.status for o in observations if o.method == method and urlsplit(o.url).path == path]
            polls = [o for o in observations if o.method == "GET" and urlsplit(o.url).path == operation["status_url_path"]]
            assert operation["create_status"] in created, (name, operation["create"])
            assert len(polls) >= operation["polls"], (name, operation["status_url_path"])


@needs_azure
@pytest.mark.parametrize("name", sorted(AZURE_STATUSES))
def test_azure_cassettes_read_as_before(name):
    recording = read(AZURE / name)
    assert recording.kind == "cassette" and recording.synthetic_times is False
    assert " ".join(str(o.status) for o in recording.observations) == AZURE_STATUSES[name]
