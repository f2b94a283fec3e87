"""Every benchmark figure quoted in the hand-written docs agrees with the generated results it cites.

docs/benchmarks.md and docs/reliability.md are written by the benchmark runs. README.md and the other pages quote
their figures, each followed by a marker naming where it comes from:

    File1 at 21.1k req/s<!-- figure: [benchmarks.md § Throughput § preset | File1 § req/s] -->

The marker holds an arithmetic expression over table cells; the quoted figure is the last number before it
(`21.1k`, `0.71x`, `34 ms`, `18000/18000` gives 18000). It must equal the expression at the precision it is
quoted with (21.1k: within 50). A cell reference is

    [FILE § SECTION § ROW § COLUMN]      the cell's first number (a status class such as 2xx is not a number);
                                         COLUMN@N: its Nth ("0.48 / 58.6 / 101", "35992/36000 2xx, 504 8")
    max[...] / sum[...]                  the largest, or the sum, of the cell's numbers ("5.4-13.0", "list 36, ...")
    #[FILE § SECTION § ROW § COLUMN=V]   how many rows match ROW and hold V in COLUMN

SECTION is part of a `##` heading of FILE; ROW is the row's first cells, separated by `|` (`*` matches any);
COLUMN is a header cell, whole. A regenerated table that moves a figure fails here until the quote is changed.
"""

from __future__ import annotations

import ast
import operator
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
GENERATED = ("benchmarks.md", "reliability.md")
# The hand-written pages: the README and every page of docs/ the benchmark runs do not write.
QUOTING = [REPO / "README.md"] + sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in GENERATED)

MARKER = re.compile(r"<!-- figure: (.*?) -->", re.S)
# A figure as quoted: 21.1k, 0.71x, 36,000, 58.6 (not the 2 of 2xx, nor a digit inside a word).
NUMBER = re.compile(r"(?<![\w.,])(\d+(?:,\d{3})*(?:\.\d+)?)(k?)(?!\d|xx)")
REFERENCE = re.compile(r"(max|sum|#)?\[([^\]]+)\]")


def tables(text):
    """{section heading: [table, ...]} of a markdown page; a table is [header cells, row cells...]."""
    sections, heading, table = {}, "", None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, table = line.lstrip("#").strip(), None
            continue
        if not line.startswith("|"):
            table = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue  # the header's underline
        if table is None:
            table = [cells]
            sections.setdefault(heading, []).append(table)
        else:
            table.append(cells)
    return sections


def numbers(cell):
    return [float(m.group(1).replace(",", "")) * (1000 if m.group(2) else 1) for m in NUMBER.finditer(cell)]


class Figures:
    """The generated pages' tables, looked up by references."""

    def __init__(self, pages):
        self.pages = {name: tables(text) for name, text in pages.items()}

    def rows(self, ref):
        """(header, matching rows, column index) of the one table that ref names."""
        parts = [p.strip() for p in ref.split("§")]
        if len(parts) != 4:
            raise LookupError("%r: not FILE § SECTION § ROW § COLUMN" % ref)
        page, section, row, column = parts
        column = re.sub(r"@\d+$", "", column.split("=")[0].strip()).strip()
        keys = [k.strip() for k in row.split("|")]
        if page not in self.pages:
            raise LookupError("%r: no generated page %s" % (ref, page))
        headings = [h for h in self.pages[page] if section in h]
        if len(headings) != 1:
            raise LookupError("%r: %d headings of %s contain %r" % (ref, len(headings), page, section))
        found = []
        for table in self.pages[page][headings[0]]:
            header, body = table[0], table[1:]
            if column not in header:
                continue
            match = [r for r in body if len(r) >= len(keys)
                     and all(k in ("*", r[i].strip("*")) for i, k in enumerate(keys))]
            if match:
                found.append((header, match, header.index(column)))
        if len(found) != 1:
            raise LookupError("%r: %d tables have that row and column" % (ref, len(found)))
        return found[0]

    def value(self, kind, ref):
        header, match, col = self.rows(ref)
        if kind == "#":
            wanted = ref.split("§")[-1].split("=", 1)[1].strip().strip("*")
            return float(sum(r[col].strip("*") == wanted for r in match))
        if len(match) != 1:
            raise LookupError("%r: %d rows match" % (ref, len(match)))
        found = numbers(match[0][col])
        if not found:
            raise LookupError("%r: no number in %r" % (ref, match[0][col]))
        nth = re.search(r"@(\d+)$", ref.strip())
        if kind is None and nth:
            if not 1 <= int(nth.group(1)) <= len(found):
                raise LookupError("%r: %r has no number %s" % (ref, match[0][col], nth.group(1)))
            return found[int(nth.group(1)) - 1]
        return {"max": max, "sum": sum}.get(kind, lambda ns: ns[0])(found)

    def evaluate(self, expression):
        """The expression's value, its references replaced by their cells' values."""
        values = []

        def substitute(m):
            values.append(self.value(m.group(1), m.group(2)))
            return "_v%d" % (len(values) - 1)

        tree = ast.parse(REFERENCE.sub(substitute, expression), mode="eval")
        ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

        def walk(node):
            if isinstance(node, ast.Expression):
                return walk(node.body)
            if isinstance(node, ast.BinOp) and type(node.op) in ops:
                return ops[type(node.op)](walk(node.left), walk(node.right))
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                return node.value
            if isinstance(node, ast.Name) and node.id.startswith("_v"):
                return values[int(node.id[2:])]
            raise ValueError("%r: only numbers, references and + - * / are allowed" % expression)

        return walk(tree)


def quotes(text):
    """(line, quoted figure, expression) of every marker in a page."""
    found, start = [], 0
    for m in MARKER.finditer(text):
        before = list(NUMBER.finditer(text, start, m.start()))
        quoted = before[-1].group(0) if before else None
        found.append((text.count("\n", 0, m.start()) + 1, quoted, m.group(1)))
        start = m.end()
    return found


def disagreements(text, figures):
    """Why each quoted figure of a page disagrees with its source (empty: all agree)."""
    wrong = []
    for line, quoted, expression in quotes(text):
        if quoted is None:
            wrong.append("line %d: no figure before the marker %r" % (line, expression))
            continue
        try:
            actual = figures.evaluate(expression)
        except (LookupError, ValueError, SyntaxError, ZeroDivisionError) as e:
            wrong.append("line %d: %s" % (line, e))
            continue
        mantissa, k = NUMBER.fullmatch(quoted).groups()
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        scale = 1000 if k else 1
        tolerance = 0.5 * 10 ** -decimals * scale + 1e-9
        if abs(numbers(quoted)[0] - actual) > tolerance:
            wrong.append("line %d: quotes %s where %s gives %s" % (line, quoted, expression, round(actual, 6)))
    return wrong


@pytest.fixture(scope="module")
def figures():
    return Figures({name: (REPO / "docs" / name).read_text() for name in GENERATED})


@pytest.mark.parametrize("page", QUOTING, ids=lambda p: str(p.relative_to(REPO)))
def test_quoted_figures_agree_with_the_generated_tables(page, figures):
    assert disagreements(page.read_text(), figures) == []


def test_the_readme_marks_its_benchmark_figures(figures):
    """The README's performance and reliability summaries quote their figures through markers (a summary that
    drops its markers would pass the test above with nothing checked)."""
    assert len(quotes((REPO / "README.md").read_text())) >= 30


PAGE = """# run

## Throughput: wrk

| target | object | req/s | p99 ms |
|---|---|---|---|
| preset | File1 | 21069.94 | 7.21 |
| local disk | File1 | 29707.84 | **8.05** |

## Targets

| case | target | figure | |
|---|---|---|---|
| a | frontend | 2xx 18000 | met |
| b | frontend | 1.5 s | **missed** |
| c | frontend | 0 | met |
"""


@pytest.mark.parametrize("quoted,expression", [
    ("21.1k", "[run.md § Throughput § preset | File1 § req/s]"),
    ("21,070", "[run.md § Throughput § preset | File1 § req/s]"),
    ("0.71x", "[run.md § Throughput § preset § req/s] / [run.md § Throughput § local disk § req/s]"),
    ("8.05", "[run.md § Throughput § local disk § p99 ms]"),
    ("18000", "[run.md § Targets § a | frontend § figure@1]"),
    ("1.5", "max[run.md § Targets § b § figure]"),
    ("18000", "[run.md § Targets § a | frontend § figure]"),
    ("2", "#[run.md § Targets § * | frontend § =met]"),
    ("4", "#[run.md § Targets § * § =met] + #[run.md § Targets § * § =**missed**] + 1"),
])
def test_a_figure_that_agrees_passes(quoted, expression):
    figures = Figures({"run.md": PAGE})
    assert disagreements("quoted %s<!-- figure: %s -->" % (quoted, expression), figures) == []


@pytest.mark.parametrize("quoted,expression,why", [
    # Drifted: the run changed (or the quote was rounded wrong).
    ("21.2k", "[run.md § Throughput § preset | File1 § req/s]", "quotes 21.2k where"),
    ("21069.8", "[run.md § Throughput § preset | File1 § req/s]", "quotes 21069.8 where"),
    ("0.72x", "[run.md § Throughput § preset § req/s] / [run.md § Throughput § local disk § req/s]", "quotes 0.72"),
    ("3", "#[run.md § Targets § * | frontend § =met]", "quotes 3 where"),
    # Pointing nowhere: a renamed row, column or section fails too.
    ("21.1k", "[run.md § Throughput § peer | File1 § req/s]", "0 tables have that row and column"),
    ("21.1k", "[run.md § Throughput § preset § req/s ratio]", "0 tables have that row and column"),
    ("21.1k", "[run.md § Floods § preset § req/s]", "0 headings of run.md contain"),
    ("21.1k", "[other.md § Throughput § preset § req/s]", "no generated page other.md"),
    ("7", "[run.md § Targets § * § figure]", "3 rows match"),
    ("7", "[run.md § Targets § a § figure@2]", "has no number 2"),
    ("7", "__import__('os')", "only numbers, references"),
])
def test_a_figure_that_drifts_or_points_nowhere_fails(quoted, expression, why):
    figures = Figures({"run.md": PAGE})
    (wrong,) = disagreements("quoted %s<!-- figure: %s -->" % (quoted, expression), figures)
    assert why in wrong, wrong


def test_a_marker_without_a_figure_fails():
    (wrong,) = disagreements("no figure here<!-- figure: [run.md § Targets § c § figure] -->",
                             Figures({"run.md": PAGE}))
    assert "no figure before the marker" in wrong
