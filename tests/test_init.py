"""lrkit/__init__.py: the public names, each loaded from its module on first use."""
from __future__ import annotations


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
