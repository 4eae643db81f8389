"""The documentation stays true to the project: the generated model card, the set-up commands CI runs,
links, the module map, the README's size and figures, and the tests the guarantees name."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from evaluate_real_photos import markdown_table
from write_model_readme import render

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
#: written by scripts/benchmark.py and scripts/bench_ray.py, not by hand
GENERATED_DOCS = {"benchmark.md", "bench_ray.md"}
HAND_WRITTEN = [README, *(p for p in sorted(DOCS.glob("*.md")) if p.name not in GENERATED_DOCS)]
#: words of a work log, not of documentation
LOG_WORDS = re.compile(r"\b(sessions?|issues?|attempts?|in full openness)\b", re.IGNORECASE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
SETUP_1 = "pip install . && fmnist-batch classify samples -o out.csv"
SETUP_2 = (
    "apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist chromium"
    " && pip install '.[train,dev,serve,ray]' && python -m pytest -q"
)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_the_model_readme_is_generated_from_the_cards():
    expected = render(REPO / "models", DOCS / "real_photos.json")
    assert (REPO / "models" / "README.md").read_text(encoding="utf-8") == expected, (
        "models/README.md is stale: run python scripts/write_model_readme.py"
    )


def test_the_bundled_models_carry_the_real_photo_figures_of_the_docs():
    # the installed package has no docs/: the web app quotes these figures from the model folder's copy
    copy = (REPO / "models" / "real_photos.json").read_text(encoding="utf-8")
    assert copy == (DOCS / "real_photos.json").read_text(encoding="utf-8"), (
        "models/real_photos.json is stale: run python scripts/write_model_readme.py"
    )


def test_the_model_readme_holds_no_absolute_path():
    text = (REPO / "models" / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"(?:^|[\s`(=])/(?:work|home|root|tmp|srv|Users)/", text)


def test_the_readme_is_for_users_and_short():
    assert len(readme()) <= 20_000


def setup_commands() -> list[str]:
    block = readme().split("## Set-up", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_gives_the_two_setup_commands_runnable_as_root():
    assert setup_commands() == [SETUP_1, SETUP_2]
    assert "sudo" not in SETUP_2


def test_ci_runs_what_the_second_setup_command_runs():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    steps = [step.strip() for step in SETUP_2.split("&&")]
    apt_packages = shlex.split(steps[1])[2:]
    packages = {word for word in apt_packages if not word.startswith("-")}
    apt_lines = [line for line in lines if "apt-get install" in line]
    assert apt_lines and packages <= set(shlex.split(apt_lines[0])), "CI installs other Debian packages"
    assert any("apt-get update" in line for line in lines)
    extras = shlex.split(steps[2])[-1]
    assert any(line.startswith("python -m pip install") and extras in shlex.split(line) for line in lines)
    assert lines[-1] == steps[3], "CI's last step is not the README's test command"


@pytest.mark.parametrize("page", HAND_WRITTEN, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name} links to {target}: no such heading"


@pytest.mark.parametrize("page", [*HAND_WRITTEN, REPO / "models" / "README.md"], ids=lambda p: p.name)
def test_docs_describe_the_project_not_how_it_was_worked_on(page):
    hits = LOG_WORDS.findall(page.read_text(encoding="utf-8"))
    assert not hits, f"{page.name}: {hits}"


def mapped_modules() -> set[str]:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    section = text.split("<!-- module map", 1)[1].split("<!-- end module map -->", 1)[0]
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", section, re.MULTILINE))


def test_the_module_map_names_every_module_and_only_those():
    package = REPO / "fmnist_batch"
    modules = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    modules.add("models/__init__.py")  # the bundled model folder, installed as fmnist_batch/bundled
    mapped = mapped_modules()
    assert not modules - mapped, f"modules missing from docs/architecture.md: {sorted(modules - mapped)}"
    assert not mapped - modules, (
        f"docs/architecture.md names modules that do not exist: {sorted(mapped - modules)}"
    )


def test_every_test_the_guarantees_name_exists():
    text = (DOCS / "guarantees.md").read_text(encoding="utf-8")
    current, missing = None, []
    for match in re.finditer(r"`(tests/\w+\.py)(?:::(test_\w+))?`|`(test_\w+)`", text):
        current = match.group(1) or current
        name = match.group(2) or match.group(3)
        if name and not re.search(rf"^def {name}\(", (REPO / current).read_text(), re.MULTILINE):
            missing.append(f"{current}::{name}")
    assert current is not None and not missing, missing


def test_the_readme_accuracy_table_is_the_evaluation_script_output():
    results = json.loads((DOCS / "real_photos.json").read_text(encoding="utf-8"))
    rows = {line.split("|")[1].strip(): line for line in readme().splitlines() if line.startswith("| ")}
    for entry in results["sets"]:
        if entry["key"] == "samples":
            continue  # in docs/real-photos.md only
        digits = 4 if entry["key"] == "dataset" else 3
        row = rows.get(entry["kind"])
        assert row is not None, f"no README row for {entry['kind']}"
        assert f"| {entry['accuracy']:.{digits}f} |" in row, f"{entry['kind']}: README differs from the JSON"
        assert f"| {entry['photos']:,} |" in row


def test_the_real_photo_tables_are_the_evaluation_script_output():
    results = json.loads((DOCS / "real_photos.json").read_text(encoding="utf-8"))
    text = (DOCS / "real-photos.md").read_text(encoding="utf-8")
    block = text.split("<!-- evaluate_real_photos.py output", 1)[1].split("-->", 1)[1]
    block = block.split("<!-- end evaluate_real_photos.py output -->", 1)[0]
    assert block.strip() == markdown_table(results["sets"]), "rerun scripts/evaluate_real_photos.py"


def test_the_readme_speed_table_is_the_benchmark_report():
    report = json.loads((DOCS / "benchmark.json").read_text(encoding="utf-8"))
    section = readme().split("## Speed", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    figures = {
        "catalog": report["methods"]["c"]["ms_per_photo"],
        "floor": report["methods"]["d"]["ms_per_photo"],
        "amateur": report["corpora"]["amateur"]["c_ms_per_photo"],
        "on-model": report["corpora"]["worn"]["c_ms_per_photo"],
    }
    for word, value in figures.items():
        row = next((line for line in rows if word in line.split("|")[1]), None)
        assert row is not None, f"no README speed row for {word}"
        assert f"| {value:.2f} |" in row, (
            f"{word}: README says {row.split('|')[-2].strip()}, the report {value:.2f}"
        )


def test_the_readme_person_path_table_is_the_evaluation_script_output():
    results = json.loads((DOCS / "real_photos.json").read_text(encoding="utf-8"))
    (on_model,) = [entry for entry in results["sets"] if entry["key"] == "on_model"]
    before, after = on_model["without_person_path"], on_model
    rows = {line.split("|")[1].strip(): line for line in readme().splitlines() if line.startswith("| ")}
    expected = {"all 360": (before["accuracy"], after["accuracy"])}
    for name in ("T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"):
        expected[name] = (before["per_class"][name], after["per_class"][name])
    for name, (without, default) in expected.items():
        assert rows.get(name, "").endswith(f"| {without:.3f} | {default:.3f} |"), (
            f"README row {name} is stale"
        )


def test_the_web_app_doc_lists_every_serve_option():
    from fmnist_batch.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    text = (REPO / "docs" / "web-app.md").read_text(encoding="utf-8")
    table = text[text.index("| --- | --- | --- |") :].split("\n\n")[0]
    for action in subparsers.choices["serve"]._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag not in (None, "--help"):
            assert f"`{flag}" in table, f"docs/web-app.md's options table lacks {flag}"


def test_git_ignores_what_a_run_leaves_beside_its_output():
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    leftovers = [
        "samples/.out.csv.settings.json",
        ".out.csv.settings.json",
        ".out.csv.lock",
        "out.csv.partial",
    ]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *leftovers], cwd=REPO, capture_output=True, text=True
    )
    assert sorted(result.stdout.split()) == sorted(leftovers)
