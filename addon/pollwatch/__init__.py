"""pollwatch: track asynchronous HTTP jobs through mitmproxy and warn about bad status polling."""

__version__ = "0.1.0"
