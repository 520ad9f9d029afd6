"""The first check of every function that takes an edge-of-chaos config."""

from __future__ import annotations

# what finite_width and simulate read; init_ needs only the two variances
CONFIG_ATTRS = ("activation", "q_star", "sigma_w", "sigma_b", "tau", "m")


def check_config(cfg, needs=CONFIG_ATTRS):
    """``cfg`` itself when it has the attributes ``needs``; a TypeError naming it otherwise
    (a user passing the activation's name, ``"crelu"``, instead of its config)."""
    missing = [a for a in needs if not hasattr(cfg, a)]
    if missing:
        raise TypeError(
            "cfg must be an edge-of-chaos config (an EoCConfig from "
            "shrinkage.activations.edge_of_chaos, e.g. edge_of_chaos('crelu', 0.85)), got "
            f"{cfg!r} of type {type(cfg).__name__}, which has no {', '.join(missing)}"
        )
    return cfg
