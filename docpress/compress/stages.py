"""Building a compression stage from its config dict: one rule for every stage kind."""

from __future__ import annotations

from docpress.errors import DocpressError


def build_stage(stage: str, kinds: dict[str, type], config: dict, default: str):
    """kinds[config["method"]](**the other keys); unknown methods and options are one-line errors.

    >>> build_stage("merge", {"ward": dict}, {"pool": 2}, "ward")
    {'pool': 2}
    """
    options = dict(config)
    method = options.pop("method", default)
    if method not in kinds:
        raise DocpressError(f"unknown {stage} method {method!r}; choose {' or '.join(kinds)}")
    try:
        return kinds[method](**options)
    except TypeError as exc:
        raise DocpressError(f"bad {stage} options {options}: {exc}") from None
