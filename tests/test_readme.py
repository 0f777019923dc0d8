"""README.md and docs/ stay true: every ```python block runs as written (CPU, demo data) and
every `python train.py` / `torchrun ... train.py` command line in a ```bash block parses with the
trainer's argument parser (a renamed or removed flag fails here); the README shows the public
entry points and links to every docs page, and every link to a page resolves."""
import re
import runpy
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = PAGES[0].read_text()


def blocks(language: str, pages=PAGES) -> list[str]:
    return [block for page in pages for block in
            re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)]


def train_commands(pages=PAGES) -> list[str]:
    commands = []
    for block in blocks("bash", pages):
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("python train.py") or (line.startswith("torchrun")
                                                       and " train.py" in line):
                commands.append(line)
    return commands


def test_readme_shows_each_public_entry_point_in_a_block_that_runs():
    """The snippets a user copies cover the promised interfaces (each block runs below)."""
    python = blocks("python", PAGES[:1])
    for needed in ("dali_cmo.load_plugin()", "fn.cmo_paste(", "fn.readers.weighted_file(",
                   "CMOIterator(", "mixed_loss("):
        assert any(needed in block for block in python), f"no ```python block uses {needed}"
    for flag in ("--preset imagenet-lt", "--preset inat2018", "--resume auto"):
        assert any(flag in command for command in train_commands(PAGES[:1])), \
            f"no train.py command line shows {flag}"


def test_every_docs_page_is_linked_and_every_link_resolves():
    for page in PAGES[1:]:
        assert f"(docs/{page.name}" in README, f"README does not link {page.name}"
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links {target}: no such page"


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index, monkeypatch, tmp_path):
    # run from a file: DALI's conditionals (AutoGraph) read the source of pipeline functions
    monkeypatch.chdir(ROOT)
    script = tmp_path / f"readme_block_{index + 1}.py"
    script.write_text(blocks("python")[index])
    runpy.run_path(str(script), run_name="__readme__")


@pytest.mark.parametrize("command", train_commands())
def test_train_command_parses(command):
    from dali_cmo.cli.train_args import get_args_parser

    words = shlex.split(command)
    argv = words[words.index("train.py") + 1:]
    if argv == ["--help"]:
        return
    argv = [word for word in argv if word != "..."]  # placeholders for values
    # placeholders such as `--data ...` leave a flag without its value: give it one
    fixed = []
    for i, word in enumerate(argv):
        fixed.append(word)
        if word in ("--data", "--val-data") and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            fixed.append("x")
    get_args_parser().parse_args(fixed)
