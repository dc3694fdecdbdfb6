"""Attacks on the proxy's event loop (issue 16): no single response may make pollwatch work for
long, because every other client waits while a hook runs. Each attack is kept here, with a
generous time bound, and the live ones run through a real mitmdump on loopback."""

from __future__ import annotations

import json
import random
import string
import threading
import time
import tracemalloc
from http.server import ThreadingHTTPServer

import brotli
import pytest
import zstandard
from mitmproxy.net import encoding as mitm_encoding

from pollwatch.core.observation import BODY_EXCERPT_LIMIT
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.mitm.decoding import decode_excerpt
from pollwatch.mitm.flows import observation_from_flow
from helpers import QuietHandler, raw_request
from test_addon_hooks import make_flow

BOMB_SIZE = 256 << 20
"""What the bombs inflate to: enough to show the bound (the issue measured 1 GiB)."""


def _compressed_zeros(compressor, size: int = BOMB_SIZE, chunk: int = 1 << 20) -> bytes:
    """A compression bomb built a MiB at a time, so building it needs no gigabyte either."""
    zeros = b"\0" * chunk
    return b"".join(compressor.compress(zeros) for _ in range(size // chunk)) + compressor.flush()


class _BrotliStream:
    def __init__(self) -> None:
        self.compressor = brotli.Compressor(quality=5)

    def compress(self, data: bytes) -> bytes:
        return self.compressor.process(data)

    def flush(self) -> bytes:
        return self.compressor.finish()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"br": _compressed_zeros(_BrotliStream()),
            "zstd": _compressed_zeros(zstandard.ZstdCompressor(level=3).compressobj())}


def bomb_flow(coding: str, body: bytes):
    """A creating response whose body pollwatch must read (a mutation answered 202)."""
    flow = make_flow("POST", "http://api.test/api/exports", 202, b"",
                     {"Content-Type": "application/json", "Content-Encoding": coding})
    flow.response.raw_content = body
    return flow


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_compression_bomb_is_decoded_only_as_far_as_the_excerpt(bombs, coding):
    assert len(bombs[coding]) < 64 * 1024  # small on the wire, 256 MiB inflated
    flow = bomb_flow(coding, bombs[coding])
    tracemalloc.start()
    started = time.perf_counter()
    obs = observation_from_flow(flow)
    body = obs.content()
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(body) == BODY_EXCERPT_LIMIT and obs.body_truncated
    assert took < 0.5, f"{coding} bomb took {took:.2f} s"
    assert peak < 64 << 20, f"{coding} bomb peaked at {peak >> 20} MiB"


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_compression_bomb_never_reaches_mitmproxys_decode_cache(bombs, coding):
    flow = bomb_flow(coding, bombs[coding])
    mitm_encoding._cache = mitm_encoding.CachedDecode(None, None, None, None)
    observation_from_flow(flow).content()
    assert mitm_encoding._cache.decoded is None
    assert flow.response.raw_content == bombs[coding]  # the flow itself is untouched


@pytest.mark.parametrize("coding, compress", [
    ("br", brotli.compress), ("zstd", zstandard.ZstdCompressor().compress),
    ("gzip", __import__("gzip").compress), ("deflate", __import__("zlib").compress), ("identity", bytes),
])
def test_every_encoding_goes_through_the_one_bounded_decoder(coding, compress):
    document = json.dumps({"id": "e-1", "status": "queued"}).encode()
    assert decode_excerpt(compress(document), coding) == (document, False)
    assert decode_excerpt(compress(b"x" * (BODY_EXCERPT_LIMIT + 10)), coding) == (b"x" * BODY_EXCERPT_LIMIT, True)


def test_a_zstd_frame_asking_for_a_64_mib_window_is_refused_not_allocated():
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=26)
    streaming = zstandard.ZstdCompressor(compression_params=params).compressobj()  # no content size
    frame = streaming.compress(b"{}" * 10) + streaming.flush()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == b"{}" * 10  # zstd's default takes it
    assert decode_excerpt(frame, "zstd") is None


# --- live: a second client is not held up while the attack runs ---------------------------------


class _BombServer(ThreadingHTTPServer):
    """Loopback origin: POST answers 202 with the bomb, GET /ping answers at once."""

    daemon_threads = True

    def __init__(self, body: bytes, coding: str) -> None:
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                self.answer(202, outer.body, {"Content-Type": "application/json", "Content-Encoding": outer.coding,
                                             "Location": "/api/exports/e-1"})

            def do_GET(self) -> None:
                self.answer(200, b"pong", {"Content-Type": "text/plain"})

        self.body, self.coding = body, coding
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_second_client_is_not_delayed_while_compression_bombs_pass_the_proxy(tmp_path, bombs, coding):
    origin = _BombServer(bombs[coding], coding)
    try:
        with ProxyProcess(tmp_path / "live.sqlite") as proxy:
            assert raw_request(proxy, "GET", f"{origin.origin}/ping") == 200  # warm up
            attack_done = threading.Event()
            statuses: list[int] = []

            def attack() -> None:
                for _ in range(4):
                    statuses.append(raw_request(proxy, "POST", f"{origin.origin}/api/exports"))
                attack_done.set()

            attacker = threading.Thread(target=attack)
            attacker.start()
            delays = []
            while not attack_done.is_set():
                started = time.perf_counter()
                raw_request(proxy, "GET", f"{origin.origin}/ping")
                delays.append(time.perf_counter() - started)
            attacker.join()
        assert statuses == [202] * 4
        assert max(delays) < 0.5, f"the second client waited {max(delays):.2f} s"
        assert "internal error" not in proxy.output()
    finally:
        origin.shutdown()
        origin.server_close()


# --- id look-alike search -----------------------------------------------------------------------


def _tracker_with_jobs(ids: list[str]):
    from helpers import Traffic
    from pollwatch.core.config import Config
    from pollwatch.core.tracking import Tracker

    traffic = Traffic(Tracker(Config(templates=["/api/exports/{id}"])))
    for job_id in ids:
        traffic.create(f"/api/exports/{job_id}", body={"id": job_id, "status": "queued"})
    return traffic


def _anagrams(length: int, count: int, seed: int) -> list[str]:
    """Ids of one alphabet shuffled: no cheap filter tells them apart, every pair is compared."""
    rng = random.Random(seed)
    letters = list((string.ascii_lowercase + string.digits) * (length // 36 + 1))[:length]
    return ["".join(rng.sample(letters, length)) for _ in range(count)]


@pytest.mark.parametrize("length", [64, 8000])
def test_unknown_ids_are_compared_with_500_recent_ids_in_well_under_a_second(length):
    traffic = _tracker_with_jobs(_anagrams(length, 500, seed=1))
    started = time.perf_counter()
    for unknown in _anagrams(length, 10, seed=2):
        update = traffic.poll(None, f"/api/exports/{unknown}", status=404, body={"error": "not found"})
        assert "unknown-job" in [f.code for f in update.findings]
    took = time.perf_counter() - started
    assert took < 1.0, f"10 unknown {length}-character ids took {took:.2f} s"


def _textbook_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def test_the_fast_edit_distance_equals_the_textbook_one_below_its_cap():
    from pollwatch.core.lookalike import edit_distance

    rng = random.Random(3)
    for _ in range(2000):
        a = "".join(rng.choices("ab-1", k=rng.randint(0, 12)))
        b = "".join(rng.choices("ab-1", k=rng.randint(0, 12)))
        cap = rng.randint(1, 8)
        assert min(edit_distance(a, b, cap), cap) == min(_textbook_distance(a, b), cap), (a, b, cap)


@pytest.mark.parametrize("unknown, known, expected", [
    ("e-100x", ["e-1001"], "e-1001"),
    ("e-1001", ["e-1001"], None),
    ("live-fail-1", ["live-ok-1"], None),
    ("3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5F", ["3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5f"],
     "3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5f"),
    ("3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5", ["x-1", "3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5f"],
     "3f2a9c1e-77b0-4c1d-9e2f-0a1b2c3d4e5f"),
    ("job_abcdefgh", ["job_abcdefgx", "job_abcdefgh2"], "job_abcdefgh2"),
])
def test_ordinary_ids_find_the_same_lookalike_as_before(unknown, known, expected):
    from pollwatch.core.lookalike import closest_id

    assert closest_id(unknown, known) == expected


# --- per-poll records -----------------------------------------------------------------------------


def test_tracking_a_healthy_poll_builds_no_pydantic_model(monkeypatch):
    """Issue 13: the records the core makes for every poll are plain slotted classes; pydantic
    models stay at the boundaries (config, records read back, JSON output)."""
    import pydantic

    traffic = _tracker_with_jobs(["e-1"])
    built: list[str] = []
    original = pydantic.BaseModel.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(pydantic.BaseModel, "__init__", counting)
    updates = [traffic.poll(state) for state in ("running", "running", "succeeded")]
    assert all(u is not None and u.poll is not None and u.job is not None for u in updates)
    assert updates[-1].job.terminal_state == "succeeded"
    assert built == []


def test_a_poll_record_read_back_is_validated_field_by_field():
    from pydantic import ValidationError

    from pollwatch.core.records import PollRecord, as_dict, validated

    traffic = _tracker_with_jobs(["e-1"])
    record = traffic.poll("running").poll
    assert validated(PollRecord, as_dict(record)) == record
    with pytest.raises(ValidationError, match="kind"):
        validated(PollRecord, as_dict(record) | {"kind": "neither"})


def test_an_observation_of_a_flow_is_freed_at_once_not_by_the_garbage_collector():
    """Most proxied flows are not job traffic and their bodies are never read: an observation that
    held itself (through its body loader) would pile up until the next collection."""
    import gc

    flow = make_flow("GET", "http://api.test/api/things/1", 200, body=b'{"id": "1"}')
    gc.collect()
    gc.disable()
    try:
        obs = observation_from_flow(flow)  # its body never read, as for most proxied flows
        del obs
        assert gc.collect() == 0
    finally:
        gc.enable()
