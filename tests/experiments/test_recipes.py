"""Recipes: the command line's defaults are the recipe's, and the functions behind the
commands agree with them."""

import argparse
import dataclasses
import inspect

import pytest

from shrinkage.cli import codes as codes_cli
from shrinkage.codes import SparseCoding, learn_dictionary
from shrinkage.experiments.codes import CompareRecipe, LearnRecipe, compare, learn
from shrinkage.experiments.codes_sweep import SweepRecipe


def _parsed(argv):
    p = argparse.ArgumentParser()
    codes_cli.register(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


@pytest.mark.parametrize(
    "action,recipe", [("learn", LearnRecipe), ("compare", CompareRecipe), ("sweep", SweepRecipe)]
)
def test_codes_command_defaults_are_the_recipe(action, recipe):
    """`codes learn` once said --atoms 512 --patches 100000 while the function it called said
    256 and 20000: now both read one recipe (threads: one unless asked, on the command line)."""
    built = recipe.from_args(_parsed(["codes", action]))
    assert built == recipe().replace(threads=1)
    assert built.check() is built


def test_learn_takes_the_recipe_and_keyword_changes():
    assert LearnRecipe().n_atoms == 512 and LearnRecipe().n_patches == 100_000
    with pytest.raises(ValueError, match="recipe must be a LearnRecipe"):
        learn("cel0")
    with pytest.raises(ValueError, match="unknown penalty"):
        learn(penalty="l3")
    with pytest.raises(ValueError, match="n_atoms"):
        learn(LearnRecipe(), n_atoms=0)
    with pytest.raises(TypeError, match="n_atom"):
        learn(n_atom=3)  # a misspelt field is not silently ignored
    with pytest.raises(ValueError, match="unknown penalty"):
        compare(penalties=("l1", "l3"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        LearnRecipe().lam = 1.0


def test_dictionary_update_default_is_one_everywhere():
    default = inspect.signature(learn_dictionary).parameters["update"].default
    assert default == SparseCoding().update == LearnRecipe().update == "bcd"
