"""The integrations as packaged: optional imports, the extras' error messages,
and docs/integrations.md's examples, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "integrations.md"


def _python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_import_vjson_imports_no_framework():
    run = _python("import vjson, vjson.integrations, sys; "
                  "print([m for m in ('langchain_core', 'llama_index', 'ray') if m in sys.modules])")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("module,framework,extra", [
    ("vjson.integrations.langchain", "langchain_core", "langchain"),
    ("vjson.integrations.llama_index", "llama_index", "llama-index"),
])
def test_a_missing_framework_names_the_extra(module, framework, extra):
    # a None entry in sys.modules makes `import framework` raise ImportError, as if not installed
    run = _python(f"import sys; sys.modules[{framework!r}] = None; sys.modules[{framework + '.core'!r}] = None\n"
                  f"try:\n    import {module}\n"
                  f"except ImportError as exc:\n    print('ImportError:', exc)\n")
    assert run.returncode == 0, run.stderr
    assert f"pip install 'vjson[{extra}]'" in run.stdout, run.stdout


def _examples(heading: str) -> list[str]:
    text = DOC.read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("heading,framework", [("LangChain", "langchain_core"), ("LlamaIndex", "llama_index.core")])
def test_the_documented_examples_run(tmp_path, heading, framework):
    pytest.importorskip(framework)
    if not DOC.exists():
        pytest.skip("no docs beside the tests")
    blocks = _examples(heading)
    assert blocks, f"no python example under '## {heading}'"
    for code in blocks:
        run = _python(code, cwd=tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
