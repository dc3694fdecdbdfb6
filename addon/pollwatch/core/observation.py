"""The plain input the core understands: one request/response exchange, free of mitmproxy types.

The mitmproxy addon, the offline analyser and the tests all build these, so every rule sees the
same facts whatever the traffic came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

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


class Observation(BaseModel):
    """One HTTP exchange as the proxy (or a recording) saw it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    flow_id: str
    method: str
    url: str
    status: int | None = Field(default=None, description="None when no response arrived")
    request_headers: Headers = Field(default_factory=Headers)
    response_headers: Headers = Field(default_factory=Headers)
    body: bytes = Field(default=b"", description="Decoded response body, at most BODY_EXCERPT_LIMIT bytes")
    body_truncated: bool = False
    request_ts: float
    response_ts: float
    client: str | None = Field(default=None, description="Client address, to tell pollers apart")
    served_from: str | None = Field(default=None, description='"browser-cache" when a HAR says the '
                                    "browser answered from its own cache (the network never saw it)")
    _load_body: Callable[[], tuple[bytes, bool]] | None = PrivateAttr(default=None)

    @field_validator("url", "method", "client")
    @classmethod
    def _encodable(cls, value: str | None) -> str | None:
        """A raw non-UTF-8 path reaches us as surrogates; they would break quoting and storage."""
        return clean_text(value) if value is not None else None

    def with_body_loader(self, load: Callable[[], tuple[bytes, bool]]) -> "Observation":
        """Defer reading the body until a rule needs it: most proxied flows are not job traffic,
        and decoding their bodies would cost every flow."""
        self._load_body = load
        return self

    def content(self) -> bytes:
        """The (bounded, decoded) response body, loaded on first use."""
        load = self.__pydantic_private__["_load_body"]  # direct: private-attribute lookup is slow
        if load is not None:
            self.body, self.body_truncated = load()
            self.__pydantic_private__["_load_body"] = None
        return self.body

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
