"""SparsifierCallback in a transformers.Trainer: small BERT- and GPT-2-style models from a
config (no download, tied embeddings), synthetic token data, gradient accumulation."""

import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from shrinkage.experiments.loop import num_threads  # noqa: E402
from shrinkage.integrations.hf import SIDECAR, SparsifierCallback  # noqa: E402
from shrinkage.weights import Cubic  # noqa: E402

VOCAB, SEQ = 48, 12


def _bert():
    cfg = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=SEQ,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=True,
    )
    return transformers.BertForMaskedLM(cfg)


def _gpt2():
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ,
        n_embd=16,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    return transformers.GPT2LMHeadModel(cfg)


MODELS = {
    "bert": (_bert, transformers.BertForMaskedLM),
    "gpt2": (_gpt2, transformers.GPT2LMHeadModel),
}


class _Tokens(torch.utils.data.Dataset):
    """Synthetic sequences with structure to learn: token t+1 = (token t + 3) mod VOCAB."""

    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        self.ids = (start + 3 * torch.arange(SEQ)) % VOCAB

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


def _args(out, **kw):
    base = dict(
        output_dir=str(out),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=8,
        learning_rate=5e-3,
        save_steps=4,
        logging_steps=2,
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return transformers.TrainingArguments(**{**base, **kw})


def _train(kind, out, resume=None, sparsity=0.8, schedule=None):
    build, _ = MODELS[kind]
    torch.manual_seed(0)
    model = build()
    cb = SparsifierCallback(sparsity, method="st3", schedule=schedule or Cubic(0, 4))
    trainer = transformers.Trainer(
        model=model, args=_args(out), train_dataset=_Tokens(), callbacks=[cb]
    )
    # One thread in the module fixture and in the tests alike (the autouse one-thread fixture
    # does not reach module-scoped ones): a bitwise resume needs the same float reductions.
    with num_threads(1):
        trainer.train(resume_from_checkpoint=resume)
    return trainer, cb


@pytest.fixture(scope="module", params=sorted(MODELS))
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    trainer, cb = _train(request.param, out / "a")
    return request.param, out, trainer, cb


def _pruned_zero_fraction(model, names):
    ws = [model.get_submodule(n).weight for n in names]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def test_sparsity_reached_once_per_optimizer_step_and_logged(run):
    kind, _, trainer, cb = run
    sp = cb.sparsifier
    assert trainer.state.global_step == 8
    assert sp.step_count == 8  # 16 micro-batches, 8 optimizer steps
    model = trainer.model
    assert not torch.nn.utils.parametrize.is_parametrized(model)  # squashed at train end
    n = sum(model.get_submodule(name).weight.numel() for name in sp.layer_names)
    assert _pruned_zero_fraction(model, sp.layer_names) == int(0.8 * n) / n
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logged] == [2, 4, 6, 8]
    assert logged[-1]["sparsity"] == pytest.approx(int(0.8 * n) / n, abs=1e-6)
    assert logged[0]["target_sparsity"] == pytest.approx(0.8 * (1 - (1 - 2 / 4) ** 3))
    assert logged[-1]["sparse_macs_per_token"] < logged[-1]["dense_macs_per_token"]
    if kind == "gpt2":
        assert sp.layer_names == ["lm_head"]  # GPT-2's Conv1D projections stay dense
    else:
        assert len(sp.layer_names) > 5
    emb = model.get_input_embeddings().weight
    assert emb is model.get_output_embeddings().weight  # still tied, zeros in the embedding
    assert float((emb == 0).float().mean()) > 0.5


def test_save_pretrained_is_a_plain_checkpoint_the_original_class_loads(run, tmp_path):
    kind, _, trainer, _ = run
    trainer.save_model(str(tmp_path / "final"))
    assert not (tmp_path / "final" / SIDECAR).exists()
    cls = MODELS[kind][1]
    again = cls.from_pretrained(str(tmp_path / "final")).eval()
    model = trainer.model.eval()
    ids = _Tokens(4).ids
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)
    mine, theirs = model.state_dict(), again.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_resume_from_a_checkpoint_is_bitwise(run):
    kind, out, trainer, _ = run
    ckpt = out / "a" / "checkpoint-4"
    assert (ckpt / SIDECAR).is_file()
    shutil.copytree(ckpt, out / "b" / "checkpoint-4")
    resumed, cb = _train(kind, out / "b", resume=str(out / "b" / "checkpoint-4"))
    assert cb.sparsifier.step_count == 8
    a, b = trainer.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_resuming_under_another_schedule_is_refused(run):
    """The sidecar's state records the schedule; a resume whose schedule differs (here the
    end of the cubic) stops at train begin, naming the step."""
    kind, out, _, _ = run
    shutil.copytree(out / "a" / "checkpoint-4", out / "d" / "checkpoint-4")
    with pytest.raises(ValueError, match="at step 1, this Sparsifier's schedule gives"):
        _train(kind, out / "d", resume=str(out / "d" / "checkpoint-4"), schedule=Cubic(0, 6))


def test_resuming_without_the_sparsifier_state_is_refused(run):
    kind, out, _, _ = run
    shutil.copytree(out / "a" / "checkpoint-4", out / "c" / "checkpoint-4")
    (out / "c" / "checkpoint-4" / SIDECAR).unlink()
    with pytest.raises(RuntimeError, match="pruning cannot resume"):
        _train(kind, out / "c", resume=str(out / "c" / "checkpoint-4"))


def test_bad_arguments_are_refused_when_the_callback_is_made():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\), got sparsity=1.5"):
        SparsifierCallback(1.5)
    with pytest.raises(ValueError, match="unknown method 'magnitude'"):
        SparsifierCallback(0.5, method="magnitude")
    with pytest.raises(ValueError, match="unknown Sparsifier argument 'sparse'"):
        SparsifierCallback(0.5, sparse=True)
    with pytest.raises(ValueError, match="schedule must be"):
        SparsifierCallback(0.5, schedule=0.5)
    # the rest of Sparsifier's checks run on a throwaway layer, not at train begin
    with pytest.raises(ValueError, match="penalty only applies to method='prox_ste'"):
        SparsifierCallback(0.5, penalty="l0")
    with pytest.raises(ValueError, match=r"min_density=0.6 .*sparsity=0.5"):
        SparsifierCallback(0.5, min_density=0.6)
    with pytest.raises(ValueError, match="method_params"):
        SparsifierCallback(0.5, method="rigl", method_params={"no_such": 1})
    assert SparsifierCallback(0.9, min_density=0.05).spec.kwargs == {"min_density": 0.05}


def test_the_default_schedule_is_cubic_over_the_first_half_of_max_steps(tmp_path):
    torch.manual_seed(0)
    cb = SparsifierCallback(0.5, method="gmp")
    trainer = transformers.Trainer(
        model=_bert(),
        args=_args(tmp_path, max_steps=6, save_strategy="no"),
        train_dataset=_Tokens(),
        callbacks=[cb],
    )
    trainer.train()
    assert cb.sparsifier.schedule == Cubic(0, 3)
    targets = [h["target_sparsity"] for h in trainer.state.log_history if "loss" in h]
    assert targets == pytest.approx([0.5 * (1 - (1 - 2 / 3) ** 3), 0.5, 0.5])


def test_finish_squashes_a_run_stopped_before_its_end(tmp_path):
    """Stopped mid-run (no on_train_end), the model's state dict holds the raw dense weights
    (the resume format); finish() squashes it where it stands, so save_pretrained writes the
    sparse model the run computed."""

    class Stop(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise KeyboardInterrupt

    build, cls = MODELS["bert"]
    torch.manual_seed(0)
    model = build()
    cb = SparsifierCallback(0.8, method="st3", schedule=Cubic(0, 4))
    trainer = transformers.Trainer(
        model=model, args=_args(tmp_path / "o"), train_dataset=_Tokens(), callbacks=[cb, Stop()]
    )
    with num_threads(1), pytest.raises(KeyboardInterrupt):
        trainer.train()
    ids = _Tokens(4).ids
    model.eval()
    with torch.no_grad():
        sparse_logits = model(input_ids=ids).logits
    names = cb.sparsifier.layer_names
    raw = model.state_dict()
    assert sum(int((raw[f"{n}.weight"] == 0).sum()) for n in names) == 0  # raw, dense
    cb.finish()
    cb.finish()  # once is enough
    model.save_pretrained(str(tmp_path / "saved"))
    again = cls.from_pretrained(str(tmp_path / "saved")).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, sparse_logits)
    assert _pruned_zero_fraction(again, names) > 0.79


def test_a_sidecar_of_other_weights_is_refused(run):
    """trainer.train(resume_from_checkpoint=PATH) does not tell callbacks PATH: the callback
    read the state beside output_dir's checkpoint of that step, another run's (its masks
    then pruned this run's weights). The state records its weights' CRC-32 and is refused
    when they are not the ones resumed."""
    kind, out, _, _ = run
    shutil.copytree(out / "a" / "checkpoint-4", out / "e" / "elsewhere" / "checkpoint-4")
    shutil.copytree(out / "a" / "checkpoint-4", out / "f" / "checkpoint-4")
    side = out / "f" / "checkpoint-4" / SIDECAR
    state = torch.load(side, weights_only=True)
    state["weights_crc32"] ^= 1  # another run's weights
    torch.save(state, side)
    with pytest.raises(RuntimeError, match="was saved with other weights than those the Trainer"):
        _train(kind, out / "f", resume=str(out / "e" / "elsewhere" / "checkpoint-4"))
