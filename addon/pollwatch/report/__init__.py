"""The self-contained HTML report: data read from the database, the page, the timeline drawing."""

from pollwatch.report.page import DEFAULT_FULL, write_report

__all__ = ["DEFAULT_FULL", "write_report"]
