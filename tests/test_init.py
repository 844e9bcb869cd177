"""lrkit/__init__.py: the public names, each loaded from its module on first use, each
documented (``Args:`` / ``Returns:``), and the docstrings' examples, which run."""
from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import re

import pytest

import lrkit
from lrkit.config import field_docs


def test_public_names_stay_the_functions_once_their_modules_are_imported():
    import lrkit
    import lrkit.evaluation.anatomy
    import lrkit.evaluation.audit
    import lrkit.studies.scout
    import lrkit.studies.ladder

    assert lrkit.scout is lrkit.studies.scout.scout
    assert lrkit.spearman is lrkit.studies.scout.spearman
    assert lrkit.odd_token_audit is lrkit.evaluation.audit.odd_token_audit
    assert lrkit.error_anatomy is lrkit.evaluation.anatomy.error_anatomy
    assert lrkit.run_study is lrkit.studies.ladder.run_study
    assert {"scout", "odd_token_audit", "error_anatomy", "run_study"} <= set(lrkit.__all__)


# ---------------------------------------------------------------- docstrings of the public names
# Each public name says what each argument means and what it returns, Google style
# (``Args:`` / ``Returns:``, as TRL and torchtune write them); a config dataclass documents
# each field by the docstring under it (lrkit.config.field_docs, which the CLI's --help reads).

_HEADER = re.compile(r"^(Args|Returns|Raises|Yields|Examples?|Note):\s*$")


def docstring_section(doc: str, title: str):
    """The text of a docstring's ``title:`` section (up to the next section or example), or None."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line == f"{title}:":
            body = []
            for rest in lines[i + 1:]:
                if _HEADER.match(rest) or rest.lstrip().startswith(">>>"):
                    break
                body.append(rest)
            return "\n".join(body)
    return None


def undocumented(obj) -> list[str]:
    """What ``obj``'s docstring leaves out: a missing ``Args:`` section or an argument it
    does not name, a missing ``Returns:`` section (a function that returns something), or
    for a dataclass a field without its docstring."""
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        return [f"field {f.name}" for f in dataclasses.fields(obj) if f.name not in field_docs(obj)]
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    names = [p.name for p in signature.parameters.values()
             if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    gaps = []
    args = docstring_section(doc, "Args")
    if names and args is None:
        gaps.append("Args:")
    elif names:
        gaps += [f"argument {name}" for name in names if not re.search(rf"\b{name}\b", args)]
    returns = not inspect.isclass(obj) and signature.return_annotation not in (None, "None")
    if returns and docstring_section(doc, "Returns") is None:
        gaps.append("Returns:")
    return gaps


def test_undocumented_names_a_missing_section_or_argument():
    def bare(x, y=1):
        """Says nothing of its arguments."""
        return x

    def partial(x, y=1) -> int:
        """Half of it.

        Args:
            x: the first.
        Returns:
            int: x.
        """
        return x

    def silent(x) -> None:
        """No return.

        Args:
            x: the input.
        """

    @dataclasses.dataclass
    class Settings:
        documented: int = 1
        """Said once."""
        bare: int = 2

    assert undocumented(bare) == ["Args:", "Returns:"]
    assert undocumented(partial) == ["argument y"]
    assert undocumented(silent) == []
    assert undocumented(Settings) == ["field bare"]


@pytest.mark.parametrize("name", sorted(lrkit._PUBLIC))
def test_every_public_name_documents_its_arguments_and_return(name):
    assert undocumented(getattr(lrkit, name)) == [], f"lrkit.{name}'s docstring lacks these"


DOCTEST_MODULES = (
    "lrkit.maths.selection",      # select_steps, soft_label_from_stats, selection_summary, no_contrast
    "lrkit.data.problems",        # load_problems on a list
    "lrkit.data.answers",         # gold_path_text
    "lrkit.evaluation.parse",     # extract_answer
    "lrkit.evaluation.grade",     # answers_match
    "lrkit.evaluation.stats",     # compare on two tiny results
    "lrkit.evaluation.anatomy",   # classify_toy
    "lrkit.studies.scout",        # spearman
)


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0, f"{module} has no examples"
    assert result.failed == 0, f"{result.failed} example(s) of {module} failed (printed above)"
