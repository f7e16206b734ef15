"""Student creation: distil-whisper's layer mapping, copied weights, a loadable directory."""
from __future__ import annotations

import pytest
import torch

from udistil.errors import UdistilError
from udistil.student.init import choose_layers, make_student, parse_layer_ids, spread_layer_ids
from conftest import generate_text


def test_spread_layer_ids_follows_distil_whisper():
    # floor(linspace(0, L-1, n)) with the last layer forced to L-1.
    assert spread_layer_ids(32, 16) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 31]
    assert spread_layer_ids(32, 2) == [0, 31]
    assert spread_layer_ids(6, 3) == [0, 2, 5]
    assert spread_layer_ids(6, 2) == [0, 5]
    assert spread_layer_ids(6, 6) == [0, 1, 2, 3, 4, 5]
    assert spread_layer_ids(6, 1) == [5]
    with pytest.raises(UdistilError):
        spread_layer_ids(6, 7)
    with pytest.raises(UdistilError):
        spread_layer_ids(6, 0)


def test_choose_layers_explicit_ids_and_errors():
    assert choose_layers(6, None, None, "encoder") == [0, 1, 2, 3, 4, 5]
    assert choose_layers(6, None, parse_layer_ids("0,2,5"), "encoder") == [0, 2, 5]
    with pytest.raises(UdistilError, match="out of range"):
        choose_layers(6, None, [0, 6], "encoder")
    with pytest.raises(UdistilError, match="repeat"):
        choose_layers(6, None, [1, 1], "decoder")
    with pytest.raises(UdistilError, match="disagrees"):
        choose_layers(6, 2, [0, 2, 5], "decoder")
    with pytest.raises(UdistilError):
        parse_layer_ids("0,x")


@pytest.fixture(scope="module")
def teacher_4x4(tmp_path_factory):
    from udistil.models.tiny import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("teacher44"), seed=3, encoder_layers=4,
                              decoder_layers=4)


def _layer_state(model, stack: str, index: int) -> dict:
    layer = getattr(model.model, stack).layers[index]
    return {k: v.clone() for k, v in layer.state_dict().items()}


def test_student_weights_are_the_chosen_teacher_layers(teacher_4x4, tmp_path):
    from transformers import WhisperForConditionalGeneration

    out = make_student(str(teacher_4x4), tmp_path / "student", encoder_layer_ids=[1, 3],
                       decoder_layers=3)
    teacher = WhisperForConditionalGeneration.from_pretrained(str(teacher_4x4))
    student = WhisperForConditionalGeneration.from_pretrained(str(out))
    assert (student.config.encoder_layers, student.config.decoder_layers) == (2, 3)
    assert student.config.udistil_teacher_decoder_layer_ids == [0, 1, 3]
    for stack, ids in (("encoder", [1, 3]), ("decoder", [0, 1, 3])):
        for s_index, t_index in enumerate(ids):
            s_layer, t_layer = _layer_state(student, stack, s_index), _layer_state(teacher, stack, t_index)
            assert s_layer.keys() == t_layer.keys()
            for key in t_layer:
                assert torch.equal(s_layer[key], t_layer[key]), (stack, s_index, t_index, key)
        # A layer the student skipped must not have leaked in (e.g. teacher encoder layer 0).
    assert not torch.equal(student.model.encoder.layers[0].fc1.weight, teacher.model.encoder.layers[0].fc1.weight)
    # Everything outside the layers is the teacher's.
    t_state, s_state = teacher.state_dict(), student.state_dict()
    outside = [k for k in t_state if ".layers." not in k]
    assert "model.encoder.conv1.weight" in outside and "model.decoder.embed_tokens.weight" in outside
    for key in outside:
        assert torch.equal(s_state[key], t_state[key]), key
    assert student.generation_config.lang_to_id == teacher.generation_config.lang_to_id
    assert student.generation_config.no_timestamps_token_id == teacher.generation_config.no_timestamps_token_id


def test_make_student_cli_output_loads_in_pipeline(teacher_4x4, tmp_path, speak):
    from transformers import pipeline

    from udistil.bin.main import main

    out = tmp_path / "cli_student"
    assert main(["make-student", "--teacher", str(teacher_4x4), "--encoder-layers", "2",
                 "--decoder-layer-ids", "0,3", "--out", str(out)]) == 0
    asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
    assert asr.model.config.encoder_layers == 2 and asr.model.config.decoder_layers == 2
    audio = speak("hello there")
    result = asr(audio, generate_kwargs={"language": "en", "task": "transcribe", "max_new_tokens": 5, "num_beams": 1})
    # The student's own greedy text (its kept layers, the teacher's tokenizer), and not the
    # teacher's: the pipeline runs the two-layer student, not the four-layer model it came from.
    assert result["text"] == generate_text(out, audio, max_new_tokens=5)
    assert result["text"] != generate_text(teacher_4x4, audio, max_new_tokens=5)
    # Bad layer choices are a one-line user error, not a traceback.
    assert main(["make-student", "--teacher", str(teacher_4x4), "--encoder-layers", "9",
                 "--out", str(tmp_path / "bad")]) == 1
