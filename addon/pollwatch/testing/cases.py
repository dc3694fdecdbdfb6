"""The failure cases a healthy job is turned into, and the sidecar file each variant carries.

A case says what changes in the recording (`variants.py` does it), which findings `pollwatch
analyze` must give for it (`codes`), and what a correct client must do with it (`must`,
`final_state`): the fixture checks a user's client against exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from pollwatch.errors import ConfigError, ReadError


class Case(BaseModel):
    """One failure case: what it is, what analysis finds in it, what a correct client does."""

    name: str
    description: str
    must: str = Field(description="What a correct client must do with this case.")
    final_state: str = Field(description="The state a correct client ends on (what it shows the user).")
    codes: tuple[str, ...] = Field((), description="Findings the variant itself carries (server side).")


CASES: dict[str, Case] = {c.name: c for c in (
    Case(name="slow", description="The job stays running for many more polls; the server asks for Retry-After.",
         must="keep polling until a terminal state, honouring Retry-After; do not give up while the job runs",
         final_state="succeeded"),
    Case(name="failed", description="The job ends in the vendor's failed state with an error body.",
         must="stop at the terminal state failed and surface the failure (and its error) to the user",
         final_state="failed"),
    Case(name="expired", description="The status answers 410 Gone with an expired state instead of the result.",
         must="stop on 410 Gone / expired and surface expired, not failed or running",
         final_state="expired", codes=("job-expired",)),
    Case(name="cached", description="Every status response says Cache-Control: max-age=30.",
         must="poll through caches (fetch with cache: 'no-store', or send Cache-Control: no-cache) "
              "and reach the terminal state",
         final_state="succeeded", codes=("status-cacheable",)),
    Case(name="etag-stuck", description="One ETag for every state of the job.",
         must="read every status body (never keep a stored copy because the ETag matches) and reach the "
              "terminal state",
         final_state="succeeded", codes=("etag-reused-across-states",)),
    Case(name="reordered", description="Two overlapping polls: the older one is answered last, with the older state.",
         must="not overlap polls, or drop answers older than the newest applied; end on the terminal state",
         final_state="succeeded", codes=("response-reordered",)),
)}
"""Every case by name, in the order `pollwatch variants` writes them."""


class VariantFile(BaseModel):
    """The sidecar `NAME.json` beside `NAME.flows`: the case, and where it came from."""

    case: Case
    source: str
    job_id: str
    base_url: str = Field(description="Scheme, host and port the recording was made against.")
    create_method: str
    create_url: str
    status_url: str
    status_polls: int

    @property
    def name(self) -> str:
        return self.case.name


def case(name: str) -> Case:
    """A case by name, or a one-line ConfigError naming the known ones."""
    if name not in CASES:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(CASES)}")
    return CASES[name]


def load_variant(directory: str | Path, name: str) -> tuple[VariantFile, Path]:
    """The sidecar and flow file of variant `name` in `directory` (written by `pollwatch variants`)."""
    folder = Path(directory)
    sidecar, flows = folder / f"{name}.json", folder / f"{name}.flows"
    if not sidecar.exists() or not flows.exists():
        found = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise ReadError(f"{folder}: no variant {name!r} (found: {', '.join(found) or 'none'}); "
                        f"write them with `pollwatch variants RECORDING -o {folder}`")
    return VariantFile.model_validate(json.loads(sidecar.read_text(encoding="utf-8"))), flows


def list_variants(directory: str | Path) -> list[str]:
    """Names of the variants in `directory`, in catalogue order (unknown names last)."""
    names = {p.stem for p in Path(directory).glob("*.json") if p.with_suffix(".flows").exists()}
    return [n for n in CASES if n in names] + sorted(names - set(CASES))
