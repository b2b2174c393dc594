"""The class report of the demo's class, graded by the real command and opened in Chromium.

The demo's samples (and its one copied pair) are graded with ``python -m autograder grade``; its
``report.html`` is opened in headless Chromium (Playwright, as the browser tests do). The page must show every
section with its figures drawn, rank the checks as ``grades.csv`` does, group the messages as the feedback pages
print them, list the copied pair and no other, and hold nothing of the hidden tests or of the reference
solution that no listed student wrote. A screenshot of the whole page is kept beside it (``report.png``).
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import nbformat
import pytest

from autograder.classreport import PAIRS_FILE, REPORT_FILE
from autograder.classreport.groups import cause_of
from autograder.config import SOURCE_NOTEBOOK
from autograder.demo import DEMO_SAMPLES
from autograder.grading.cells import TITLES
from autograder.samples import load_samples, write_class
from tests.e2e.test_browser import CHROMIUM
from tests.e2e.test_grading_app import run_grade

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}")]

SECTIONS = ("points", "checks", "mistakes", "curves", "part3", "time", "pairs", "students")
COPIED = ("copied_manual_topk", "correct_manual_topk")


@pytest.fixture(scope="module")
def demo_class(tmp_path_factory, trained_model_path):
    root = tmp_path_factory.mktemp("report")
    samples = [s for s in load_samples() if s.name in DEMO_SAMPLES]
    write_class(root / "submitted", samples)
    proc, rows = run_grade(root / "submitted", root / "out", trained_model_path, jobs=2)
    return samples, rows, root / "out", proc


@pytest.fixture(scope="module")
def page(demo_class):
    from playwright.sync_api import sync_playwright
    out = demo_class[2]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        tab = browser.new_page(viewport={"width": 1300, "height": 900})
        requests = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto((out / REPORT_FILE).as_uri())
        tab.screenshot(path=str(out / "report.png"), full_page=True)
        print(f"screenshot: {out / 'report.png'}")
        yield tab, requests
        browser.close()


def test_grading_ends_with_the_report_and_the_pairs(demo_class):
    _, _, out, proc = demo_class
    assert f"class report in {out / REPORT_FILE} (1 pair worth comparing, also in {PAIRS_FILE})" in proc.stdout


def test_every_section_is_there_with_its_figures_drawn_offline(page, demo_class):
    tab, requests = page
    for section in SECTIONS:
        assert tab.locator(f"section#{section}").is_visible(), section
    figures = tab.locator("figure svg")
    assert figures.count() == 7
    for i in range(figures.count()):
        box = figures.nth(i).bounding_box()
        assert box["width"] > 150 and box["height"] > 80, i
        assert figures.nth(i).locator("path").count() > 5, i  # axes, ticks, bars or lines
    # the class curves: one line per student who stored a sweep, and the reference's, in both parts
    assert tab.locator("section#curves svg").count() == 1
    assert all(u.startswith("file://") for u in requests), requests  # nothing fetched
    assert (demo_class[2] / "report.png").stat().st_size > 50_000


def _scored(rows):
    return {sid: r for sid, r in rows.items() if r["score"] != ""}


def test_checks_are_ranked_as_grades_csv_says(page, demo_class):
    tab, _ = page
    rows = _scored(demo_class[1])
    expected = []
    for gid in TITLES:
        passed = sum(1 for r in rows.values() if float(r[gid]) > 0)
        expected.append((gid, passed, len(rows)))
    expected.sort(key=lambda e: e[1] / e[2])  # stable: ties in the notebook's order
    shown = []
    for tr in tab.locator("table.rates tr[data-check]").all():
        cells = tr.locator("td").all_inner_texts()
        shown.append((tr.get_attribute("data-check"), int(cells[1]), int(cells[2])))
    assert shown == expected


def _feedback_messages(out: Path, sid: str) -> dict[str, list[str]]:
    """``{grade_id: [message]}`` as the student's feedback page prints them."""
    page = (out / "feedback" / f"{sid}.html").read_text()
    found = {}
    row = r"<code class='gid'>([^<]+)</code></td><td>[^<]*</td><td class='fail'>(.*?)</td>"
    for gid, cell in re.findall(row, page):
        cell = re.sub(r"^<b>Failed because.*?</b><br>", "", cell)
        found[gid] = [html.unescape(m) for m in cell.split("<br>")]
    return found


def test_mistakes_are_grouped_as_the_feedback_pages_print_them(page, demo_class):
    tab, _ = page
    _, rows, out, _ = demo_class
    expected: dict[tuple[str, str], set[str]] = {}
    for sid in _scored(rows):
        for gid, messages in _feedback_messages(out, sid).items():
            for m in messages:
                expected.setdefault((gid, cause_of(m)), set()).add(sid)
    shown = {}
    for tr in tab.locator("table.groups tr[data-check]").all():
        cells = tr.locator("td")
        cause = cells.nth(1).inner_text().split("\ne.g. ")[0].strip()
        who = {a.strip() for a in cells.nth(3).inner_text().split(",")}
        shown[(tr.get_attribute("data-check"), cause)] = who
        assert int(tr.get_attribute("data-count")) == len(who)
    assert shown == expected
    counts = [int(tr.get_attribute("data-count")) for tr in tab.locator("table.groups tr[data-check]").all()]
    assert counts == sorted(counts, reverse=True)


def test_the_copied_pair_is_listed_and_no_other(page, demo_class):
    tab, _ = page
    out = demo_class[2]
    assert [p.get_attribute("data-pair") for p in tab.locator("div.pair").all()] == [" ".join(COPIED)]
    assert tab.locator("div.pair mark").count() > 10  # the shared passages, on both sides
    with open(out / PAIRS_FILE, encoding="utf-8") as fh:
        pairs = list(csv.DictReader(fh))
    assert [(p["student_a"], p["student_b"]) for p in pairs] == [COPIED]
    assert float(pairs[0]["score"]) >= 0.5


def _region_lines(begin: str, end: str) -> set[str]:
    nb = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    lines, inside = set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if begin in line:
                inside = True
            elif end in line:
                inside = False
            elif inside and len(line.strip()) >= 25:
                lines.add(line.strip())
    return lines


def test_no_hidden_test_and_no_solution_code_but_what_a_listed_student_wrote(page, demo_class):
    tab, _ = page
    out = demo_class[2]
    text = tab.locator("body").inner_text()
    raw = (out / REPORT_FILE).read_text() + (out / "class.json").read_text()
    hidden = _region_lines("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    assert hidden and not [line for line in hidden if line in text or html.escape(line) in raw]
    listed = {s.name: "\n".join((s.cells or {}).values()) for s in load_samples() if s.name in COPIED}
    solution = _region_lines("### BEGIN SOLUTION", "### END SOLUTION")
    pairs_text = " ".join(tab.locator("div.pair").all_inner_texts())
    outside_pairs = text.replace(pairs_text, "")
    assert not [line for line in solution if line in outside_pairs]
    assert all(any(line in code for code in listed.values()) for line in solution if line in pairs_text)


def test_the_students_table_sorts_by_score_and_links_each_feedback_page(page, demo_class):
    tab, _ = page
    out = demo_class[2]
    header = tab.locator("#student-table th", has_text="score")
    header.click()
    scores = [float(t) for t in tab.locator("#student-table tbody tr td:nth-child(3)").all_inner_texts() if t]
    assert scores == sorted(scores) and len(scores) == len(_scored(demo_class[1]))
    header.click()
    scores = [float(t) for t in tab.locator("#student-table tbody tr td:nth-child(3)").all_inner_texts() if t]
    assert scores == sorted(scores, reverse=True)
    for link in tab.locator("#student-table tbody a").all():
        assert (out / link.get_attribute("href")).is_file()
