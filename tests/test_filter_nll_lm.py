"""nll with --nll-lm: the pseudo-label scored by a causal LM (a tiny random GPT-2 here)."""
from __future__ import annotations

import pytest
import torch
from lhotse import MonoCut, SupervisionSegment

from udistil.errors import UdistilError
from udistil.filters import create_filter

WORDS = ["<unk>", "<s>", "the", "river", "is", "near", "market", "a", "bridge"]


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_lm")
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>").save_pretrained(out)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(WORDS), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                               bos_token_id=1, eos_token_id=1)).save_pretrained(out)
    return out


def cut(text):
    c = MonoCut(id="c", start=0, duration=1.0, channel=0, recording=None)
    c.supervisions = [SupervisionSegment("c", "c", 0, 1.0, language="en",
                                         custom={"teacher_text": text, "teacher_logprobs": [-9.0]})]
    return c


def test_lm_nll_matches_the_models_own_loss(tiny_lm_dir):
    from transformers import AutoModelForCausalLM

    text = "the river is near the market"
    mean = create_filter("nll", nll_lm=str(tiny_lm_dir)).score([cut(text)], [None])[0].value
    total = create_filter("nll_sum", nll_lm=str(tiny_lm_dir)).score([cut(text)], [None])[0].value
    ids = torch.tensor([[1] + [WORDS.index(w) for w in text.split()]])
    loss = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)(ids, labels=ids).loss.item()
    # Every word is scored (BOS gives the first one a context); the teacher's -9.0 is ignored.
    assert mean == pytest.approx(loss, rel=1e-4)
    assert total == pytest.approx(loss * 6, rel=1e-4)


def test_lm_empty_text_is_null_and_bad_dir_is_clear(tiny_lm_dir, tmp_path):
    s = create_filter("nll", nll_lm=str(tiny_lm_dir)).score([cut("")], [None])[0]
    assert s.value is None and "empty" in s.reason
    with pytest.raises(UdistilError, match="no config.json|causal language model"):
        create_filter("nll", nll_lm=str(tmp_path))
