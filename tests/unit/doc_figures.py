"""Checks a walkthrough's figure against the `summary.json` of the evidence it cites.

A registered figure names its doc, its evidence id, the text as the doc prints it ("243 / 557 / 1,049 req/s")
and one JSON path per number in that text. The text must stand in the evidence's row of the doc's table or in
a paragraph citing the id (or in the block holding `where`, for a table that cites none), and each number must
equal its path's value at the doc's precision: "1,049" is any value in [1048.5, 1049.5], "2.9" any in
[2.85, 2.95], "~2,700" any in [2650, 2750]. Only what a summary.json holds can be checked: figures read from
a report's process table, a wrk log or an older run in git history are not registered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from services.lab.config import REPO_ROOT

DOCS = REPO_ROOT / "docs"
NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")
PATH_PART = re.compile(r'\.?([A-Za-z_][\w\-]*)|\["([^"]+)"\]|\[(\d+)\]')
EVIDENCE_LINK = re.compile(r"\]\((evidence/[^)\s#]+)\)")


@dataclass(frozen=True)
class Figure:
    """`text` as the doc prints it; `paths` one per number in it, read from `evidence` (a folder under
    docs/evidence/, or a summary.json path) or, when None, from the row's first linked evidence. `scale`
    turns the JSON's unit into the doc's (100 for a fraction shown as %, 1/1000 for ms shown as s)."""

    doc: str
    id: str
    text: str
    paths: tuple[str, ...]
    evidence: str | None = None
    scale: float = 1.0
    where: str | None = None  # a figure outside the evidence's row: text of the table line or paragraph holding it

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.id}:{self.text}"


def numbers(text: str) -> list[str]:
    """The numbers in a figure's text as printed ("1,049", "2.9", "0"), in order."""
    return NUMBER.findall(text)


def approximate(text: str) -> list[bool]:
    """For each number in `text`, whether the doc marks it as rounded ("~2,700", "near 490")."""
    return [text[:m.start()].rstrip().endswith(("~", "near")) for m in NUMBER.finditer(text)]


def agrees(printed: str, value: float, scale: float = 1.0, approx: bool = False) -> bool:
    """True when `value` × `scale` rounds to `printed` at the precision printed (either way at a half); an
    approximate figure's trailing zeros are not precision: "~2,700" is any value in [2650, 2750]."""
    whole, _, fraction = printed.replace(",", "").partition(".")
    unit = 10.0 ** -len(fraction)
    if approx and not fraction and whole.strip("-0"):
        unit = 10.0 ** (len(whole) - len(whole.rstrip("0")))
    return abs(value * scale - float(printed.replace(",", ""))) <= 0.5 * unit + 1e-9


def lookup(data: object, path: str) -> object:
    """`variants["cache on"].endpoints["/{code}"].p99_ms` in `data`; a KeyError names the missing step.
    A path ending `#k` reads the k-th number of a string value (`facts["p99 before / during (ms)"]#1`);
    `a + b` and `a - b` add and subtract paths (a figure the doc works out, such as two gateways' core-ms)."""
    terms = re.split(r" ([+-]) ", path)
    if len(terms) > 1:
        total = float(lookup(data, terms[0]))  # type: ignore[arg-type]
        for sign, term in zip(terms[1::2], terms[2::2]):
            total += float(lookup(data, term)) * (1 if sign == "+" else -1)  # type: ignore[arg-type]
        return total
    path, _, nth = path.partition("#")
    at, pos = data, 0
    while pos < len(path):
        step = PATH_PART.match(path, pos)
        if step is None or step.end() == pos:
            raise ValueError(f"bad path {path!r} at {pos}")
        key, quoted, index = step.groups()
        at = at[int(index)] if index is not None else at[key if key is not None else quoted]  # type: ignore[index]
        pos = step.end()
    if nth:
        return float(numbers(str(at))[int(nth)].replace(",", ""))
    return at


def blocks(doc_text: str) -> list[str]:
    """The doc cut into table lines, list items and paragraphs: the places a figure is quoted in."""
    found = []
    for paragraph in re.split(r"\n\s*\n", doc_text):
        if paragraph.lstrip().startswith("|"):
            found.extend(paragraph.strip().splitlines())
        else:
            found.extend(item.strip() for item in re.split(r"\n(?=- )", paragraph))
    return found


def passages(doc_text: str, evidence_id: str, where: str | None = None) -> list[str]:
    """The blocks holding `where` when given; else the evidence's row of the doc's tables (`| E7 | ...`)
    followed by every block citing it (**[E7]**, **[C3, E8]**)."""
    if where is not None:
        return [b for b in blocks(doc_text) if where in b]
    row = re.compile(rf"^\| *{re.escape(evidence_id)} *\|")
    cite = re.compile(rf"\[[^\]]*\b{re.escape(evidence_id)}\b[^\]]*\]")
    return [b for b in blocks(doc_text) if row.match(b)] + [b for b in blocks(doc_text) if cite.search(b)]


def summary_path(figure: Figure, passage: str, docs: Path = DOCS) -> Path:
    if figure.evidence is not None:
        target = docs / "evidence" / figure.evidence
    else:
        links = EVIDENCE_LINK.findall(passage)
        if not links:
            raise LookupError(f"{figure.id}: its row links no evidence; name one in the registry")
        target = (docs / links[0]).parent
    return target if target.suffix == ".json" else target / "summary.json"


def problems(figure: Figure, docs: Path = DOCS) -> list[str]:
    """What is wrong with one registered figure; empty when the doc and its evidence agree."""
    texts = passages((docs / figure.doc).read_text(), figure.id, figure.where)
    if not texts:
        return [f"{figure.doc} has no row or paragraph citing {figure.id}" +
                (f" holding {figure.where!r}" if figure.where else "")]
    passage = next((t for t in texts if figure.text in t), None)
    if passage is None:
        return [f"{figure.doc} {figure.id}: {figure.text!r} is not in its row (changed? update doc or registry)"]
    printed = numbers(figure.text)
    if len(printed) != len(figure.paths):
        return [f"{figure.id}: {len(printed)} numbers in {figure.text!r} but {len(figure.paths)} paths"]
    source = summary_path(figure, passage, docs)
    data = json.loads(source.read_text())
    wrong = []
    for shown, rounded, path in zip(printed, approximate(figure.text), figure.paths):
        value = lookup(data, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            wrong.append(f"{path} is {value!r}, not a number")
        elif not agrees(shown, value, figure.scale, rounded):
            wrong.append(f"{figure.id} prints {shown} where {_rel(source)} {path} is {value}"
                         + (f" (× {figure.scale:g})" if figure.scale != 1 else ""))
    return wrong


def _rel(path: Path) -> Path:
    try:
        return path.relative_to(REPO_ROOT)
    except ValueError:
        return path
