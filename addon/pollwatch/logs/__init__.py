"""Worker log readers: one module per format, all producing `pollwatch.core.worker.WorkerEvent`s.

Importing the package registers the built-in formats (JSON lines, logfmt, OTLP/JSON) for sniffing; a
plain-text log is read with `RegexFormat(pattern)`; other formats `register` themselves.
"""

from pollwatch.logs import jsonl, logfmt, otlp  # noqa: F401 - registers the formats
from pollwatch.logs.base import (
    FORMATS, Bad, LineFormat, WorkerLogFormat, WorkerLogRead, choose, read_worker_logs, register,
)
from pollwatch.logs.fields import FieldNames, Mapper, parse_time
from pollwatch.logs.plain import RegexFormat

__all__ = ["FORMATS", "Bad", "FieldNames", "LineFormat", "Mapper", "RegexFormat", "WorkerLogFormat", "WorkerLogRead",
           "choose", "parse_time", "read_worker_logs", "register"]
