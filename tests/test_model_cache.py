"""Where models come from: the converted-model cache outside the checkout, hub ids that
download when the hub may be asked and not when HF_HUB_OFFLINE=1, and stage 0's check of
every model a run needs (`udistil check-models`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from udistil.errors import UdistilError

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_model_cache_is_outside_the_checkout(monkeypatch, tmp_path):
    from udistil.models.spec import default_cache_dir

    monkeypatch.delenv("UDISTIL_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "udistil" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "udistil" / "models"
    assert REPO_ROOT not in default_cache_dir().parents
    monkeypatch.setenv("UDISTIL_MODEL_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


class FakeHub:
    """huggingface_hub's snapshot_download/list_repo_files: nothing cached, a download gives `repo`."""

    def __init__(self, repo: Path):
        self.repo, self.calls = repo, []

    def snapshot_download(self, spec, local_files_only=False, **kw):
        from huggingface_hub.errors import LocalEntryNotFoundError

        self.calls.append(("snapshot", spec, local_files_only, kw))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        return str(self.repo)

    def list_repo_files(self, spec):
        self.calls.append(("list", spec))
        return ["config.json", "model.safetensors", "pytorch_model.bin", "flax_model.msgpack"]


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    repo = tmp_path / "snapshot"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    hub = FakeHub(repo)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", hub.list_repo_files)
    return hub


def test_hub_id_downloads_when_the_hub_may_be_asked(monkeypatch, fake_hub):
    from udistil.models.spec import resolve_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert resolve_model("openai/whisper-large-v3") == str(fake_hub.repo)
    download = [c for c in fake_hub.calls if c[0] == "snapshot" and not c[2]]
    assert len(download) == 1 and download[0][1] == "openai/whisper-large-v3"
    ignored = download[0][3]["ignore_patterns"]
    assert "*.bin" in ignored and "*.msgpack" in ignored  # safetensors present: PyTorch weights once


def test_hub_id_is_never_downloaded_offline(monkeypatch, fake_hub):
    from udistil.models.spec import resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UdistilError, match=r"HF_HUB_OFFLINE=1.*huggingface-cli download openai/whisper-large-v3"):
        resolve_model("openai/whisper-large-v3")
    assert all(c[0] == "snapshot" and c[2] for c in fake_hub.calls)


# --- stage 0: every model the run needs, checked at once ----------------------------------

def test_check_models_lists_everything_missing_in_one_message(monkeypatch, tiny_whisper_dir):
    from udistil.models.check import check_models, missing_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert missing_models("packaged:whisper-base", ["confidence", "nll", "pesq"]) == []
    assert missing_models(str(tiny_whisper_dir), ["proxy_wer"], proxy="packaged:whisper-tiny.en") == []
    with pytest.raises(UdistilError) as err:
        check_models("openai/whisper-nonexistent-teacher", ["confidence", "proxy_wer"],
                     proxy="facebook/nonexistent-proxy")
    message = str(err.value)
    assert "2 model(s)" in message
    assert "teacher openai/whisper-nonexistent-teacher" in message and "proxy (proxy_wer) facebook/nonexistent-proxy" in message
    assert "huggingface-cli download facebook/nonexistent-proxy" in message
    # The proxy is only needed when a filter uses it.
    assert missing_models(str(tiny_whisper_dir), ["confidence"], proxy="facebook/nonexistent-proxy") == []


def test_run_sh_stage_0_stops_on_a_missing_proxy_before_any_work(tmp_path, tiny_whisper_dir):
    import os
    import subprocess

    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="local")
    proc = subprocess.run([str(REPO_ROOT / "run.sh"), "--skip-install", "true", "--stop-stage", "0",
                           "--teacher", str(tiny_whisper_dir), "--filters", "confidence proxy_wer",
                           "--proxy", "facebook/nonexistent-proxy"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "proxy (proxy_wer) facebook/nonexistent-proxy" in proc.stderr
    assert not (tmp_path / "exp" / "models" / "teacher").exists()  # nothing prepared


def test_unknown_pipeline_conf_key_is_an_error(tmp_path):
    import os
    import subprocess

    conf = tmp_path / "pipeline.conf"
    conf.write_text("--beam=1\n--students-layers=32-16\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="local", pipeline_conf=str(conf))
    proc = subprocess.run(["bash", str(REPO_ROOT / "egs" / "swahili" / "run.sh"), "--skip-install", "true",
                           "--stage", "1", "--stop-stage", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert f"{conf}: --students-layers is not an option" in proc.stderr
    assert not (tmp_path / "data").exists()
