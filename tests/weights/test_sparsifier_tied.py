"""Sparsifier on tied weights: a Parameter read by a pruned layer and by any other module.

Every module that reads a pruned Parameter sees the same effective weight, so squash()
changes no output; a tie that cannot be honoured is refused, naming both modules.
"""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from shrinkage.weights import Sparsifier

# the tiny models prune their middle layer away at these sparsities: warned, not the point here
pytestmark = pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")


class _TinyLM(nn.Module):
    """Embedding -> Linear -> head, the head's weight tied to the embedding's."""

    def __init__(self, vocab=20, dim=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mid = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids)  # the residual keeps the lookup in the output at any sparsity
        return self.head(h + torch.tanh(self.mid(h)))


def _ids(seed=0, vocab=20):
    return torch.randint(0, vocab, (3, 7), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["st3", "gmp", "hard_ste"])
def test_tied_embedding_reads_the_same_effective_weight_as_the_pruned_head(method):
    """The embedding looks up rows of the thresholded weight, not of the raw one."""
    torch.manual_seed(0)
    model = _TinyLM()
    raw = model.emb.weight.detach().clone()
    Sparsifier(model, 0.6, method=method)
    assert parametrize.is_parametrized(model.emb, "weight")
    assert torch.equal(model.emb.weight, model.head.weight)
    zeros = int((model.emb.weight == 0).sum()) + int((model.mid.weight == 0).sum())
    assert zeros == 134  # floor(60 % of 20 x 8 + 8 x 8), the tied tensor counted once
    assert int((raw == 0).sum()) == 0
    ids = _ids()
    h = model.head.weight[ids]
    expected = model.head(h + torch.tanh(model.mid(h)))
    assert torch.equal(model(ids), expected)


def test_squash_on_a_tied_embedding_changes_no_output_and_keeps_the_tie():
    torch.manual_seed(1)
    model = _TinyLM()
    raw = model.emb.weight
    sp = Sparsifier(model, 0.7)
    ids = _ids(2)
    with torch.no_grad():
        before = model(ids)
    sp.squash()
    assert not parametrize.is_parametrized(model)
    assert model.emb.weight is raw and model.head.weight is raw  # identity and tie kept
    with torch.no_grad():
        assert torch.equal(model(ids), before)
    assert list(model.state_dict()) == list(_TinyLM().state_dict())
    plain = _TinyLM()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(plain(ids), before)


def test_gradients_of_both_uses_reach_the_one_raw_weight():
    """Straight-through: d loss / d raw = d loss / d effective, summed over both uses."""
    torch.manual_seed(2)
    model = _TinyLM()
    Sparsifier(model, 0.5, rescale=False)
    ids = _ids(3)
    model(ids).square().mean().backward()
    raw = model.emb.parametrizations.weight.original
    assert raw is model.head.parametrizations.weight.original
    # reference: the same network on a plain copy of the effective weight
    w = model.head.weight.detach().clone().requires_grad_(True)
    out = nn.functional.linear(w[ids] + torch.tanh(model.mid(w[ids])), w)
    out.square().mean().backward()
    torch.testing.assert_close(raw.grad, w.grad)


def test_a_tied_layer_left_out_by_exclude_is_refused_naming_both():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight

    with pytest.raises(ValueError, match=r"'b' shares its weight with pruned layer 'a'.*exclude"):
        Sparsifier(Pair(), 0.5, exclude=["b"])
    with pytest.raises(ValueError, match="no prunable layer"):
        Sparsifier(Pair(), 0.5, exclude=["a", "b"])  # both out: nothing left, said plainly
    model = Pair()
    sp = Sparsifier(model, 0.5)  # both in: one unit, the two layers see one weight
    assert sp.layer_names == ["a"] and torch.equal(model.a.weight, model.b.weight)


def test_an_excluded_tied_embedding_is_refused_naming_the_pruned_layer():
    """exclude=["emb"] matched the embedding, yet it read the head's pruned weight (80 %
    zeros on BERT and GPT-2): refused now, naming the layer to exclude with it."""
    with pytest.raises(
        ValueError, match=r"exclude names 'emb'.*pruned layer 'head'.*exclude 'head'"
    ):
        Sparsifier(_TinyLM(), 0.6, exclude=["emb"])
    with pytest.raises(ValueError, match=r"exclude names 'emb'"):
        Sparsifier(_TinyLM(), 0.6, exclude=["e*"])
    model = _TinyLM()
    Sparsifier(model, 0.6, exclude=["mid"])  # the tie itself is still pruned as one
    assert torch.equal(model.emb.weight, model.head.weight)


def test_a_reader_with_its_own_parametrization_is_refused_with_the_exclude_to_use():
    class Scale(nn.Module):
        def forward(self, w):
            return 2 * w

    model = _TinyLM()
    parametrize.register_parametrization(model.emb, "weight", Scale())
    with pytest.raises(ValueError, match=r"'emb\.parametrizations\.weight'.*exclude=\['head'\]"):
        Sparsifier(model, 0.5)
    assert not parametrize.is_parametrized(model.head)  # refused before any change
    sp = Sparsifier(model, 0.5, exclude=["head"])
    assert sp.layer_names == ["mid"]


def test_gpt2_style_model_with_tied_embeddings_squashes_without_changing_logits():
    """GPT-2 from a config (no download): lm_head is tied to the token embedding wte."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, tie_word_embeddings=True
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    assert model.lm_head.weight is model.transformer.wte.weight
    sp = Sparsifier(model, 0.8)
    assert sp.layer_names == ["lm_head"]  # GPT-2's Conv1D projections are not Linear
    assert torch.equal(model.transformer.wte.weight, model.lm_head.weight)
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(ids).logits
    sp.squash()
    with torch.no_grad():
        after = model(ids).logits
    assert torch.equal(after, before)
    assert model.lm_head.weight is model.transformer.wte.weight
    zeros = float((model.transformer.wte.weight == 0).float().mean())
    assert zeros == pytest.approx(0.8, abs=1 / model.lm_head.weight.numel())
