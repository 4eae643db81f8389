from __future__ import annotations

import html
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_batch.cli import Environment, main
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model.card import bundled_model_dir
from fmnist_batch.outputs.html_report import IN_FLIGHT, HtmlReport, make_thumbnail
from fmnist_batch.outputs.rows import make_row
from fmnist_batch.outputs.writer import OutputError, read_rows

OPTIONS = {"top_k": 3, "min_confidence": 0.5}
VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base", "embed", "track"}


class StrictParser(HTMLParser):
    """Fails on any element closed out of order or left open; collects images and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        for name in ("src", "href"):
            if name in attributes:
                self.urls.append(attributes[name])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def check_html(text: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(text)
    parser.close()
    assert parser.doctype
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    assert not re.search(r"https?://", text), "the report must not reference anything online"
    for url in parser.urls:
        assert url.startswith(("data:image/jpeg;base64,", "#")), url
    return parser


def photo(
    path: Path, colour: tuple[int, int, int] = (40, 60, 90), size: tuple[int, int] = (300, 400)
) -> Path:
    img = Image.new("RGB", size, (253, 253, 253))
    img.paste(colour, (60, 80, size[0] - 60, size[1] - 80))
    img.save(path)
    return path


def probabilities(label: str, confidence: float) -> np.ndarray:
    p = np.full(len(CLASS_NAMES), (1 - confidence) / (len(CLASS_NAMES) - 1), np.float32)
    p[CLASS_NAMES.index(label)] = confidence
    return p


@pytest.fixture
def run_rows(tmp_path) -> list[dict]:
    """Rows as a run yields them: three classes, mixed confidences, an uncertain one and two errors."""
    folder = tmp_path / "photos"
    folder.mkdir()
    spec = [
        ("shoe-a.jpg", "Sneaker", 0.91),
        ("shoe-b.png", "Sneaker", 0.42),
        ("bag, with comma.jpg", "Bag", 0.77),
        ("shoe-c.jpg", "Sneaker", 0.66),
        ('<i>"dress" & co.png', "Dress", 0.88),
        ("bag-2.jpg", "Bag", 0.99),
    ]
    rows = []
    for name, label, confidence in spec:
        path = photo(folder / name)
        rows.append(make_row(str(path), probabilities(label, confidence), None, **OPTIONS))
    not_an_image = "not an image file (cannot identify)"
    rows.insert(2, make_row(str(folder / "notes.jpg"), None, not_an_image, **OPTIONS))
    rows.append(make_row(str(folder / "empty.jpg"), None, "empty file", **OPTIONS))
    return rows


def write_report(rows: list[dict], output: Path, **kwargs) -> str:
    with HtmlReport(output, **kwargs) as report:
        for row in rows:
            report.add(row)
        report.finish()
    return output.read_text(encoding="utf-8")


def group(text: str, label: str) -> str:
    anchor = "class-" + "".join(c if c.isalnum() else "-" for c in label.lower())
    start = text.index(f'id="{anchor}"')
    return text[start : text.index("</details>", start)]


def test_report_lists_every_file_grouped_least_confident_first_with_errors(run_rows, tmp_path):
    text = write_report(run_rows, tmp_path / "report.html")
    parser = check_html(text)
    for row in run_rows:
        assert html.escape(row["path"]) in text, row["path"]
    # groups in class order, each least confident first
    positions = [text.index(f'id="class-{slug}"') for slug in ("dress", "sneaker", "bag")]
    assert positions == sorted(positions)
    sneakers = group(text, "Sneaker")
    assert [float(p) for p in re.findall(r"<b>([\d.]+)%</b>", sneakers)] == [42.0, 66.0, 91.0]
    assert sneakers.index("shoe-b.png") < sneakers.index("shoe-c.jpg") < sneakers.index("shoe-a.jpg")
    assert "uncertain" in sneakers  # 0.42 < --min-confidence 0.5
    # every classified photo has a lazily loaded embedded thumbnail; errors have none
    assert len(parser.images) == 6
    assert all(img["loading"] == "lazy" and img["src"].startswith("data:image/jpeg") for img in parser.images)
    errors = text[text.index("id=errors") :]
    assert "notes.jpg" in errors and "not an image file (cannot identify)" in errors
    assert "empty.jpg" in errors and "empty file" in errors
    # the summary table: per class count and mean confidence, totals
    summary = text[text.index("id=summary") : text.index("</section>")]
    assert re.search(r"Sneaker</a></td><td class=num>3</td><td class=num>50\.0%</td>", summary)
    assert "0.663" in summary  # mean confidence of the sneakers
    assert re.search(r"<th>errors</th><td class=num><a href=\"#errors\">2</a>", summary)


def test_thumbnails_are_small_jpegs(tmp_path):
    data = make_thumbnail(str(photo(tmp_path / "big.png", size=(1200, 900))))
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and max(img.size) == 96 and len(data) < 8000
    assert make_thumbnail(str(tmp_path / "vanished.jpg")) is None


def test_a_photo_that_vanished_gets_a_placeholder(tmp_path):
    path = photo(tmp_path / "here.jpg")
    row = make_row(str(path), probabilities("Coat", 0.8), None, **OPTIONS)
    gone = make_row(str(tmp_path / "gone.jpg"), probabilities("Coat", 0.7), None, **OPTIONS)
    text = write_report([row, gone], tmp_path / "report.html")
    check_html(text)
    assert "gone.jpg" in text and "no preview" in text


def test_names_that_are_not_utf8_or_html_are_escaped(tmp_path):
    name = os.fsdecode(b"caf\xe9 <script>.png")
    path = photo(tmp_path / name)
    text = write_report(
        [make_row(str(path), probabilities("Bag", 0.9), None, **OPTIONS)], tmp_path / "report.html"
    )
    check_html(text)
    assert "caf\ufffd &lt;script&gt;.png" in text and "<script" not in text


def test_report_is_replaced_atomically_and_leaves_no_temporary_files(run_rows, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "report.html"
    target.write_text("old report")
    write_report(run_rows, target)
    assert target.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_a_bad_destination_is_refused_before_any_work(tmp_path):
    with pytest.raises(OutputError):
        HtmlReport(tmp_path / "missing-folder" / "report.html")
    with pytest.raises(OutputError):
        HtmlReport(tmp_path)


def test_rows_in_flight_stay_bounded(tmp_path):
    path = str(photo(tmp_path / "one.jpg"))
    with HtmlReport(tmp_path / "report.html") as report:
        for i in range(IN_FLIGHT * 3):
            report.add(make_row(path, probabilities("Shirt", 0.5 + i / 1000), None, **OPTIONS))
            assert len(report._pending) <= IN_FLIGHT
        report.finish()
    assert (tmp_path / "report.html").read_text().count("<figure") == IN_FLIGHT * 3


def test_classify_report_option_covers_every_file_of_the_run(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, colour in enumerate([(20, 20, 20), (200, 30, 30), (30, 30, 200)]):
        photo(folder / f"p{i}.jpg", colour)
    photo(folder / "sub" / "wide.png", size=(500, 200))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out, report = tmp_path / "out.csv", tmp_path / "report.html"
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    status = main(["classify", str(folder), "-o", str(out), "--report", str(report), "--workers", "1"], env)
    assert status == 1, env.stderr.getvalue()  # broken.jpg failed
    text = report.read_text(encoding="utf-8")
    check_html(text)
    rows = list(read_rows(str(out)))
    assert len(rows) == 5
    for row in rows:
        assert row["path"] in text
    errors = text[text.index("id=errors") :]
    assert "broken.jpg" in errors
    assert f"report: {report}" in env.stderr.getvalue()
    # the header gives the test accuracy of the file classify ran (the card's choice), not the Keras one
    card = json.loads((bundled_model_dir() / "model_card.json").read_text())
    ran = card["preprocessing"]["litert_file"]
    accuracy = card["metrics"]["int8_test_accuracy" if ran == "tflite_int8" else "tflite_test_accuracy"]
    assert f"model test accuracy {accuracy:.2%}" in text


def test_classify_refuses_a_report_in_a_missing_folder_before_reading_photos(tmp_path):
    photo(tmp_path / "a.jpg")
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    args = ["classify", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o.csv"), "--report", "/nowhere/r.html"]
    status = main(args, env)
    assert status == 2
    assert "/nowhere" in env.stderr.getvalue() and not (tmp_path / "o.csv").exists()


def test_the_report_shows_the_figures_of_the_summary_it_is_given(run_rows, tmp_path):
    from fmnist_batch.outputs.summary import Summary

    summary = Summary()
    for row in run_rows:
        summary.add(row)
    summary.skipped = 40  # rows of an earlier run (--resume) the report never saw
    with HtmlReport(tmp_path / "report.html") as report:
        for row in run_rows:
            report.add(row)
        report.finish(summary, model_accuracy=0.9)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    table = text[text.index("id=summary") : text.index("</section>")]
    assert re.search(r"<th>files</th><td class=num>8</td>", table)
    assert re.search(r"skipped \(already in the output, --resume\)</th><td class=num>40</td>", table)


def test_the_uncertain_column_gives_a_count_for_every_class(run_rows, tmp_path):
    text = write_report(run_rows, tmp_path / "report.html")
    summary = text[text.index("id=summary") : text.index("</section>")]
    per_class = re.findall(r'<a href="#class-([a-z-]+)">.*?<td class=num>([^<]*)</td></tr>', summary)
    assert dict(per_class) == {"dress": "0", "sneaker": "1", "bag": "0"}  # 0 is a count, not a blank


def test_a_photo_read_as_worn_or_segmented_says_so_and_a_catalog_shot_does_not(tmp_path, catalog):
    probabilities = np.eye(len(CLASS_NAMES), dtype=np.float32)[0]
    paths = [str(p) for p, _ in catalog[:3]]
    report_path = tmp_path / "report.html"
    with HtmlReport(report_path) as report:
        for path, view, region in zip(
            paths, ("catalog", "segmented", "worn"), ("", "", "upper"), strict=True
        ):
            report.add(make_row(path, probabilities, None, **OPTIONS, view=view, region=region))
        report.finish()
    text = report_path.read_text()
    check_html(text)
    assert text.count("<span class=view>") == 2
    assert "<span class=view>worn · upper</span>" in text and "<span class=view>segmented</span>" in text
