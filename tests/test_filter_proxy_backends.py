"""proxy_wer backends other than Whisper, on tiny random models (no hub weights offline).

A random CTC model transcribes garbage, so these tests check the plumbing that a real
wav2vec2/MMS checkpoint goes through: model-type detection, language coverage (plain CTC
needs --proxy-languages; MMS-style tokenizers list their languages), batching, nulls.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from lhotse import MonoCut, SupervisionSegment

from udistil.errors import UdistilError
from udistil.filters import create_filter
from udistil.filters.proxy_models import CtcProxy, iso639_3, load_proxy

LETTERS = list("abcdefghijklmnopqrstuvwxyz'")


@pytest.fixture(scope="module")
def tiny_ctc_dir(tmp_path_factory):
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                              Wav2Vec2ForCTC, Wav2Vec2Processor)

    out = tmp_path_factory.mktemp("tiny_ctc")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{ch: i + 3 for i, ch in enumerate(LETTERS)}}
    (out / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(out / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                                     word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(out)
    return out


def test_iso639_3():
    assert (iso639_3("ar"), iso639_3("sw"), iso639_3("en-US"), iso639_3("arz")) == ("arb", "swh", "eng", "arz")


def test_plain_ctc_needs_its_languages(tiny_ctc_dir):
    with pytest.raises(UdistilError, match="--proxy-languages"):
        load_proxy(str(tiny_ctc_dir))
    proxy = load_proxy(str(tiny_ctc_dir), languages=["en"])
    assert isinstance(proxy, CtcProxy) and not proxy.multilingual
    assert proxy.supports("en") and not proxy.supports("sw")


def test_ctc_proxy_scores_covered_cuts_and_nulls_the_rest(tiny_ctc_dir):
    cuts = []
    for i, lang in enumerate(["en", "sw", "en"]):
        c = MonoCut(id=f"c{i}", start=0, duration=1.0, channel=0, recording=None)
        c.supervisions = [SupervisionSegment(c.id, c.id, 0, 1.0, language=lang,
                                             custom={"teacher_text": "hello there"})]
        cuts.append(c)
    rng = np.random.default_rng(0)
    audios = [rng.standard_normal(16000 + 800 * i).astype(np.float32) * 0.1 for i in range(3)]
    filt = create_filter("proxy_wer", proxy=str(tiny_ctc_dir), proxy_languages=["en"])
    scores = filt.score(cuts, audios)
    assert scores[1].value is None and "'sw'" in scores[1].reason
    assert scores[0].value is not None and scores[2].value is not None and scores[0].value >= 0


def test_unknown_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(UdistilError, match="not a supported proxy"):
        load_proxy(str(tmp_path))
