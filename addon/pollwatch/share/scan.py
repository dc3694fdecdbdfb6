"""`pollwatch scan`: every secret the detectors find in recordings and pollwatch databases.

Recordings go through the same load, allow-list copy and `FlowRedactor` walk as sanitize (in
scan mode: report, change nothing); databases are read column by column. Sanitize also runs
`scan_recording` on its own output before keeping it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pollwatch.share.documents import document_hits
from pollwatch.share.loading import ClientAddresses, fresh_copy, load
from pollwatch.share.pseudonymize import known_ids
from pollwatch.share.redactor import FlowRedactor
from pollwatch.share.secrets import Detectors, Hit, Rules, preview
from pollwatch.sources.readers import expand

SQLITE_MAGIC = b"SQLite format 3\x00"


def scan_paths(paths: Iterable[str | Path], rules: Rules | None = None) -> list[Hit]:
    """Every secret the detectors find in recordings and pollwatch databases."""
    detectors = Detectors(rules)
    hits: list[Hit] = []
    for path in _scan_targets(paths):
        hits += scan_database(path, detectors) if _is_sqlite(path) else scan_recording(path, detectors)
    return hits


def _scan_targets(paths: Iterable[str | Path]) -> list[Path]:
    targets: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            targets.append(path)
        else:
            targets += expand([path])  # folders: the recordings in them; a missing path raises ReadError
    return targets


def scan_recording(path: Path, detectors: Detectors) -> list[Hit]:
    loaded = load(path, detectors)
    detectors = detectors.with_protected(known_ids(loaded.flows, detectors))
    redactor = FlowRedactor(detectors, file=str(path), scan=True, flow_ids=loaded.kind == "flows")
    clients = ClientAddresses()
    hits = list(loaded.dropped)
    for index, flow in enumerate(loaded.flows):
        hits += redactor.run(fresh_copy(flow, clients), index)
    return sorted(hits, key=by_flow)


def by_flow(hit: Hit) -> tuple[bool, int]:
    """File order: each flow's findings together, file-level ones last."""
    return hit.flow is None, hit.flow or 0


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == SQLITE_MAGIC


def scan_database(path: Path, detectors: Detectors) -> list[Hit]:
    """Every text column of a pollwatch database; JSON columns walked like bodies. Opened read-only
    (scanning changes nothing); a damaged one is a one-line StorageError naming it."""
    from pollwatch.store.database import COLUMNS, PRIMARY_KEYS
    from pollwatch.store.reading import open_database

    conn = open_database(path)
    try:
        ids = {r[0] for r in conn.execute("select job_id from jobs") if r[0]}
        for (text,) in conn.execute("select ids from polls where ids is not null"):
            ids.update(str(v) for v in _json_object(text).values())
        detectors = detectors.with_protected(frozenset(ids))
        hits: list[Hit] = []
        for table, columns in COLUMNS.items():
            names = [c for c, kind in columns.items() if kind is str]
            pk = PRIMARY_KEYS[table]
            for row in conn.execute(f"select {pk}, {', '.join(names)} from {table}"):
                for column, value in zip(names, row[1:]):
                    hits += _cell_hits(str(path), f"{table}:{row[0]}", column, value, detectors)
        return hits
    finally:
        conn.close()


def _json_object(text: str) -> dict[str, Any]:
    """A JSON object column as written, or empty when damage made it something else."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cell_hits(file: str, where: str, column: str, value: Any, detectors: Detectors) -> list[Hit]:
    if not isinstance(value, str) or not value:
        return []
    if value[:1] in "{[":
        try:
            return document_hits(json.loads(value), detectors, file, None, where, column)
        except ValueError:
            pass
    hits = [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end])) for s in detectors.spans(value)]
    return hits + [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end]))
                   for s in detectors.forbidden(value)]


__all__ = ["by_flow", "scan_database", "scan_paths", "scan_recording"]
