"""The plain input the core understands: one request/response exchange, free of mitmproxy types.

The mitmproxy addon, the offline analyser and the tests all build these, so every rule sees the
same facts whatever the traffic came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping


BODY_EXCERPT_LIMIT = 64 * 1024
"""Bytes of a response body the core may look at; larger bodies are cut (and then rarely parse)."""


class Headers(dict[str, str]):
    """Case-insensitive view of HTTP headers: names lower-cased, repeated fields joined by ", "."""

    @classmethod
    def of(cls, fields: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> "Headers":
        headers = cls()
        if fields is None:
            return headers
        items = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in items:
            key, value = clean_text(name).lower(), clean_text(value)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers


def clean_text(text: str) -> str:
    """Lone surrogates (undecodable bytes kept by mitmproxy, or `\ud800` escapes in JSON) become
    U+FFFD, so the text can be encoded and stored."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


class Observation:
    """One HTTP exchange as the proxy (or a recording) saw it.

    A plain slotted class, not a pydantic model: one is built for every proxied request, most of
    which are not job traffic. Its inputs come from mitmproxy or from a reader that has checked
    them already; the only cleaning left is the text that must stay encodable. Headers and body
    may be handed over as loaders, decoded on first use."""

    __slots__ = ("flow_id", "method", "url", "status", "_request_headers", "_response_headers", "body",
                 "body_truncated", "request_ts", "response_ts", "client", "served_from", "_load_body")

    FIELDS = ("flow_id", "method", "url", "status", "request_headers", "response_headers", "body", "body_truncated",
              "request_ts", "response_ts", "client", "served_from")
    """Every field, in order (what `as_dict` gives and the keyword arguments `__init__` takes)."""

    flow_id: str
    method: str
    url: str
    status: int | None
    """None when no response arrived."""
    body: bytes
    """Decoded response body, at most BODY_EXCERPT_LIMIT bytes."""
    body_truncated: bool
    request_ts: float
    response_ts: float
    client: str | None
    """Client address, to tell pollers apart."""
    served_from: str | None
    """"browser-cache" when a HAR says the browser answered from its own cache (the network never saw it)."""

    def __init__(self, *, flow_id: str, method: str, url: str, request_ts: float, response_ts: float,
                 status: int | None = None, request_headers: Headers | Callable[[], Headers] | None = None,
                 response_headers: Headers | Callable[[], Headers] | None = None, body: bytes = b"",
                 body_truncated: bool = False, client: str | None = None, served_from: str | None = None) -> None:
        """`request_headers`/`response_headers`: Headers, or a function that makes them when first
        asked (most proxied requests never need their request headers)."""
        self.flow_id = flow_id
        self.method = clean_text(method)  # a raw non-UTF-8 path reaches us as surrogates; they would
        self.url = clean_text(url)        # break quoting and storage
        self.status = status
        self._request_headers = Headers() if request_headers is None else request_headers
        self._response_headers = Headers() if response_headers is None else response_headers
        self.body = body
        self.body_truncated = body_truncated
        self.request_ts = request_ts
        self.response_ts = response_ts
        self.client = None if client is None else clean_text(client)
        self.served_from = served_from
        self._load_body: Callable[[Observation], tuple[bytes, bool]] | None = None

    @property
    def request_headers(self) -> Headers:
        headers = self._request_headers
        if not isinstance(headers, Headers):
            headers = self._request_headers = headers()
        return headers

    @property
    def response_headers(self) -> Headers:
        headers = self._response_headers
        if not isinstance(headers, Headers):
            headers = self._response_headers = headers()
        return headers

    def with_body_loader(self, load: Callable[["Observation"], tuple[bytes, bool]]) -> "Observation":
        """Defer reading the body until a rule needs it: most proxied flows are not job traffic,
        and decoding their bodies would cost every flow. `load` is given this observation (for
        its headers), so it need not hold it: a loader that did would make a reference cycle,
        and every unread observation would wait for the garbage collector."""
        self._load_body = load
        return self

    def content(self) -> bytes:
        """The (bounded, decoded) response body, loaded on first use."""
        if self._load_body is not None:
            self.body, self.body_truncated = self._load_body(self)
            self._load_body = None
        return self.body

    def loaded(self) -> "Observation":
        """Every deferred part read now, so the source (a mitmproxy flow) need not be kept."""
        self.content()
        self.request_headers, self.response_headers  # noqa: B018 - loads them
        return self

    def as_dict(self) -> dict[str, object]:
        """Every field (headers and body loaded), for comparisons and pickling."""
        self.loaded()
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Observation) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment] - mutable, compared by value

    def __repr__(self) -> str:
        return f"Observation({self.method} {self.url} -> {self.status}, flow {self.flow_id})"

    @classmethod
    def make(
        cls,
        *,
        request_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        response_headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
        **fields: object,
    ) -> "Observation":
        """Build an observation from loose parts (dict headers, str bodies); cuts the body."""
        raw = body.encode() if isinstance(body, str) else body
        return cls(
            request_headers=Headers.of(request_headers),
            response_headers=Headers.of(response_headers),
            body=raw[:BODY_EXCERPT_LIMIT],
            body_truncated=len(raw) > BODY_EXCERPT_LIMIT,
            **fields,  # type: ignore[arg-type]
        )
