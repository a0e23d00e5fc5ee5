"""MkDocs hooks: the pages made from the repository itself, so that the site follows it without a hand list.

* `theory/<note>.md`: every note in the repository's `theory/` folder, rendered (its equations included) and
  listed in the navigation under "Theory notes";
* `gallery/index.md` and `gallery/<name>.md`: one page per `experiments/*.toml`, with its figure from
  `experiments/figures/<name>.png`, the command that makes it, what it shows (the row of `experiments/README.md`
  that names the file, else the comment at the top of the TOML) and the TOML itself.

A new experiment or note appears on the next `make docs`; one without a figure says so on its page.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
THEORY, EXPERIMENTS = ROOT / "theory", ROOT / "experiments"


def _notes() -> list[Path]:
    return sorted(THEORY.glob("*.md"))


def _experiments() -> list[Path]:
    return sorted(EXPERIMENTS.glob("*.toml"))


def _title(md: str, fallback: str, short: bool = False) -> str:
    """The note's first heading; short: without its "(code: ...)" or "(MATH ...)" tail (for the navigation)."""
    m = re.search(r"^# (.+)$", md, re.M)
    title = m.group(1).strip() if m else fallback
    return re.sub(r"\s*\((code|MATH)\b.*$", "", title) if short else title


def _readme_rows() -> dict[str, tuple[str, str]]:
    """{file name: (what it shows, time)} from the table in experiments/README.md."""
    rows = {}
    readme = EXPERIMENTS / "README.md"
    for line in readme.read_text().splitlines() if readme.exists() else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith(".toml`"):
            rows[cells[0].strip("`")] = (cells[2], cells[3])
    return rows


def _header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def _note_page(path: Path) -> str:
    """The note as written, its links into the repository pointed at the repository's files."""
    md = path.read_text()
    # links to other notes stay inside the site; links to code become plain text (the site holds no source)
    md = re.sub(r"\]\((?:\.\./)?theory/([\w-]+\.md)(#[\w-]+)?\)", r"](\1\2)", md)
    md = re.sub(r"\[([^\]]+)\]\((?!https?:|#|[\w-]+\.md)[^)]+\)", r"\1", md)
    # the notes are written for GitHub, where a list may follow its paragraph directly; Python-Markdown needs a
    # blank line there, else the items run into the paragraph
    out: list[str] = []
    for line in md.splitlines():
        item = re.match(r"^(- |\* |\d+\. )", line)
        if item and out and out[-1].strip() and not re.match(r"^(\s*- |\s*\* |\s*\d+\. |\s{2,})", out[-1]):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


def _theory_index() -> str:
    lines = [
        "# Theory notes",
        "",
        "The derivations behind every closed form of the lab, one note per family of formulas, named like the "
        "code that implements it. Each formula is labelled *exact* (judged by |z|) or *DE* (a deterministic "
        "equivalent, judged by |z| or its finite-size gap); see [Concepts](../concepts.md).",
        "",
    ]
    for p in _notes():
        lines.append(f"- [{_title(p.read_text(), p.stem)}]({p.name})")
    return "\n".join(lines) + "\n"


def _gallery_page(path: Path, rows: dict, has_figure: bool) -> str:
    text = path.read_text()
    cfg = tomllib.loads(text)
    name = path.stem
    shows, time = rows.get(path.name, (_header_comment(text) or cfg.get("description", ""), "-"))
    kind = cfg.get("kind", "lambda_scan")
    figure = (
        f"![{name}](figures/{name}.png)"
        if has_figure
        else "*No figure in `experiments/figures/` yet: run the command below.*"
    )
    return "\n".join(
        [
            f"# {name}",
            "",
            f"**Kind:** `{kind}` &nbsp; **Time on 2 CPU cores:** {time}",
            "",
            shows,
            "",
            figure,
            "",
            "Lines: theory; markers: simulation ± 1 standard error.",
            "",
            "## Run it",
            "",
            "```bash",
            f"collapse-jax run experiments/{path.name}            # writes results/{name}.npz/.json/.png/.pdf",
            f"collapse-jax run experiments/{path.name} --seeds 200  # fewer seeds: a quick look",
            "```",
            "",
            f"## `experiments/{path.name}`",
            "",
            "```toml",
            text.rstrip(),
            "```",
            "",
        ]
    )


def _gallery_index(paths: list[Path], rows: dict, figures: set[str]) -> str:
    lines = [
        "# Gallery",
        "",
        "Every experiment in `experiments/`: its figure (from `experiments/figures/`, the last run's), what it "
        "shows and, on its page, the command and the TOML. Lines are theory; markers are simulation ± 1 "
        "standard error.",
        "",
        '<div class="gallery-grid">',
    ]
    for p in paths:
        img = f'<img src="figures/{p.stem}.png" alt="{p.stem}" loading="lazy">' if p.stem in figures else ""
        shows = rows.get(p.name, ("", ""))[0]
        first = re.sub(r"`|\*", "", shows.split(". ")[0])
        short = first if len(first) <= 160 else first[:160].rsplit(" ", 1)[0] + " …"
        lines.append(
            f'<figure><a href="{p.stem}/">{img}</a><figcaption><a href="{p.stem}/"><b>{p.stem}</b></a>'
            f"<br>{short}</figcaption></figure>"
        )
    lines.append("</div>")
    return "\n".join(lines) + "\n"


def on_config(config):
    """Put every theory note under "Theory notes" in the navigation, in file order."""
    notes = [{_title(p.read_text(), p.stem, short=True): f"theory/{p.name}"} for p in _notes()]
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and "Theory notes" in item:
            config["nav"][i] = {"Theory notes": [{"Overview": "theory/index.md"}, *notes]}
    return config


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "theory/index.md", content=_theory_index()))
    for p in _notes():
        files.append(File.generated(config, f"theory/{p.name}", content=_note_page(p)))
    rows = _readme_rows()
    paths = _experiments()
    figures = {p.stem for p in (EXPERIMENTS / "figures").glob("*.png")}
    files.append(File.generated(config, "gallery/index.md", content=_gallery_index(paths, rows, figures)))
    for p in paths:
        files.append(File.generated(config, f"gallery/{p.stem}.md", content=_gallery_page(p, rows, p.stem in figures)))
        if p.stem in figures:
            png = EXPERIMENTS / "figures" / f"{p.stem}.png"
            files.append(File.generated(config, f"gallery/figures/{p.stem}.png", abs_src_path=str(png)))
    return files


def on_page_content(html: str, page, config, files) -> str:
    if page.file.src_uri.startswith("theory/") and page.file.src_uri != "theory/index.md":
        return f'<div class="theory-note">{html}</div>'
    return html
