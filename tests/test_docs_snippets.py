"""The runnable examples of the documentation run, and do what they say.

A fenced ```python block of a page listed in PAGES whose first line is
exactly ``# runnable`` is a complete program: it imports everything it uses
and ends with an ``assert`` on its own result.  Each runs in a fresh Python
process (so that no registry, environment variable or import of one example
leaks into another), with third-party plugin autoload off, and must exit 0
within TIMEOUT seconds.  A block may also say what it prints with lines
``# prints: TEXT`` anywhere in it; each TEXT must then appear in its output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tutorials and the pages around them: every ```python block of these must be runnable (a fragment
# that cannot run on its own is fenced ```py instead), so that no code a reader copies goes untested.
TUTORIALS = (
    "docs/index.md",
    "docs/getting-started.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "tutorials").glob("*.md")),
    "docs/coming-from-optuna.md",
    "docs/coming-from-ray-tune.md",
)
PAGES = (
    "docs/plugins.md",
    "docs/executors.md",
    "docs/warm_start.md",
    "docs/multi_objective.md",
    "docs/integrations.md",
    *TUTORIALS,
)
MARK = "# runnable"
TIMEOUT = 120.0  # seconds; only reached when an example hangs

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_PRINTS = re.compile(r"^\s*# prints: (.+?)\s*$", re.MULTILINE)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def runnable_blocks(page: str) -> list[tuple[str, str]]:
    """``(id, source)`` of every runnable block of ``page``; the id is ``page:line``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        source = match.group(1)
        if source.splitlines()[:1] == [MARK]:
            blocks.append((f"{page}:{_line_of(text, match.start())}", source))
    return blocks


ALL = [block for page in PAGES for block in runnable_blocks(page)]


def test_every_page_has_runnable_examples() -> None:
    # A renamed marker or a broken fence would otherwise leave nothing to run, and every test would pass.
    for page in PAGES:
        assert runnable_blocks(page), f"{page} has no block starting with {MARK!r}"


@pytest.mark.parametrize("page", TUTORIALS)
def test_every_python_block_of_a_tutorial_runs(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    for match in _FENCE.finditer(text):
        first = match.group(1).splitlines()[:1]
        assert first == [MARK], f"{page}:{_line_of(text, match.start())}: a ```python block must start with {MARK!r}"


def test_tutorials_are_found() -> None:
    assert len([p for p in TUTORIALS if p.startswith("docs/tutorials/")]) >= 7


def test_plugins_page_has_one_example_per_kind() -> None:
    sources = [source for where, source in ALL if where.startswith("docs/plugins.md")]
    for kind in ("strategy", "pruner", "storage", "logger", "executor"):
        assert any(f'register("{kind}",' in source for source in sources), f"no runnable example registers a {kind}"


@pytest.mark.parametrize(("where", "source"), ALL, ids=[where for where, _ in ALL])
def test_runnable_example(where: str, source: str, tmp_path: Path) -> None:
    assert source.rstrip().splitlines()[-1].lstrip().startswith("assert"), f"{where} does not end with an assert"
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("HPT_ASYNC_DISABLE_PLUGINS", "HPT_ASYNC_TRACE_HOOKS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
    for promised in _PRINTS.findall(source):
        assert promised in done.stdout, f"{where} promised to print {promised!r}; it printed:\n{done.stdout}"
