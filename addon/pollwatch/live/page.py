"""The view's one HTML page: markup, its own CSS and script (files beside this module), the
report's stylesheet and timeline legend, all inline. No network assets: it works offline and
through any proxy. Nothing from traffic is in it; the script fetches that as JSON and puts it
into the page as text."""

from __future__ import annotations

from functools import cache
from importlib import resources

from pollwatch.report.page import stylesheet
from pollwatch.report.timeline import legend


@cache
def _part(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@cache
def _template() -> str:
    """The page with everything but the nonce filled in (the parts are read once)."""
    page = _part("page.html")
    for marker, text in (("{{report_css}}", stylesheet()), ("{{css}}", _part("page.css")), ("{{legend}}", legend()),
                         ("{{js}}", _part("page.js"))):
        page = page.replace(marker, text, 1)
    return page


def render_page(nonce: str) -> str:
    """The page; `nonce` marks its own style and script as the only ones the browser may run
    (the Content-Security-Policy sent with it names the same nonce)."""
    return _template().replace("{{nonce}}", nonce)


def security_policy(nonce: str) -> str:
    """Only the page's own script and style run, it talks only to its own host, loads nothing."""
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
