"""How text becomes BM25 terms: Unicode normalisation, diacritics folded, CJK in bigrams,
letter/digit runs split, numbers kept whole (decimals too).

Folding is limited to the marks that writers drop freely (Latin accents, Arabic harakat and
tatweel, Hebrew points), so scripts whose vowel signs are letters (Devanagari, Thai) keep them.
"""

from __future__ import annotations

import re
import unicodedata

# Bumped whenever terms change: cached BM25 indexes built with other terms are rebuilt.
TERMS_VERSION = 2

_FOLD = re.compile("[\u0300-\u036f\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ALNUM_BOUNDARY = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])|_")
_CJK_RUN = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
# A number (with its decimals or thousands groups), a word of two or more characters, or a
# lone CJK character.
TOKEN_PATTERN = (r"(?u)\d+(?:[.,]\d+)*|\b\w\w+\b"
                 "|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _bigrams(match: re.Match) -> str:
    run = match.group(0)
    if len(run) == 1:
        return f" {run} "
    return " " + " ".join(run[i:i + 2] for i in range(len(run) - 1)) + " "


def normalize(text: str) -> str:
    """The text as BM25 tokenises it.

    >>> normalize("FY2018 capex, 3M_2018_10K")
    'FY 2018 capex, 3 M 2018 10 K'
    >>> normalize("Café ﬁnance"), normalize("كِتَابٌ"), normalize("東京都")
    ('Cafe finance', 'كتاب', ' 東京 京都 ')
    """
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = unicodedata.normalize("NFC", _FOLD.sub("", text))
    text = _CJK_RUN.sub(_bigrams, text)
    return _ALNUM_BOUNDARY.sub(" ", text)


def query_terms(query: str) -> list[str]:
    """The terms of a query that can match anything: lower-cased, English stopwords left out
    (the same list BM25 drops).

    >>> query_terms("What is the FY2018 capex?"), query_terms("the of ?!")
    (['what', 'fy', '2018', 'capex'], [])
    """
    from bm25s.stopwords import STOPWORDS_EN

    return [t for t in re.findall(TOKEN_PATTERN, normalize(query).lower()) if t not in STOPWORDS_EN]
