"""The CLI contract other tools depend on: predict, evaluate, train (score is in test_report)."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classifier import LABELS
from classifier.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
needs_default = pytest.mark.skipif(not (ROOT / "models" / "default" / "model.json").exists(),
                                   reason="models/default not built")


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@needs_default
def test_predict_keeps_input_fields_and_adds_label_probs_relevance(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"id": 7, "text": "加V：abc123 免费领资料"}, {"id": 8, "text": "早上好"}])
    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["predict", str(src), "--topic", "私域运营 社群", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in rows] == [7, 8]
    assert [x["label"] for x in rows] == ["ad", "off_topic"]
    for x in rows:
        assert set(x["probs"]) == set(LABELS) and abs(sum(x["probs"].values()) - 1) < 1e-3
        assert 0 <= x["relevance"] <= 1 and "explanation" not in x


@needs_default
def test_predict_reads_stdin_and_writes_stdout():
    r = runner.invoke(app, ["predict", "-", "--explain"], input='{"text": "扫码进群领券"}\n')
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip())
    assert row["label"] == "ad" and row["explanation"]


@needs_default
def test_evaluate_json_shape(tmp_path):
    rows = [{"text": "加V：abc123 免费领资料", "label": "ad"}, {"text": "早上好", "label": "off_topic"},
            {"text": "有人用过企业微信的群发吗", "label": "question"}]
    r = runner.invoke(app, ["evaluate", str(_jsonl(tmp_path / "e.jsonl", rows)), "--topic", "私域运营", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert {"macro_f1", "accuracy", "per_class", "confusion"} <= set(m)
    assert set(m["per_class"]["ad"]) == {"precision", "recall", "f1", "support"}
    assert m["accuracy"] == 1.0 and m["per_class"]["ad"]["support"] == 1
    # what a bot acting on p(ad) >= t would do: the one ad is caught at 0.5, nothing else flagged
    ops = {op["threshold"]: op for op in m["ad_operating_points"]}
    assert set(ops) == {0.5, 0.8, 0.9, 0.95}
    assert ops[0.5] == {"threshold": 0.5, "flagged": 1, "precision": 1.0, "recall": 1.0}
    flagged = [ops[t]["flagged"] for t in sorted(ops)]
    assert flagged == sorted(flagged, reverse=True)  # a higher threshold never flags more
    table = runner.invoke(app, ["evaluate", str(tmp_path / "e.jsonl"), "--topic", "私域运营"])
    assert "macro-F1" in table.stdout and "confusion" in table.stdout
    assert "ad when p(ad) >= 0.80: flagged" in table.stdout


def test_bad_input_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n', encoding="utf-8")
    r = runner.invoke(app, ["predict", str(bad)])
    assert r.exit_code == 1 and r.output.strip().count("\n") == 0 and ":2:" in r.output
    r = runner.invoke(app, ["predict", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 1 and "no such file" in r.output
    lab = _jsonl(tmp_path / "l.jsonl", [{"text": "x", "label": "spam"}])
    r = runner.invoke(app, ["evaluate", str(lab)])
    assert r.exit_code == 1 and "spam" in r.output


def test_train_writes_a_loadable_model(tmp_path):
    # varied words, not only digits: the split hashes normalised text, where digits collapse
    acts = ["裂变", "拉新", "促活", "复购", "留存", "转化", "分层", "召回", "打卡", "直播", "团购", "积分"]
    chat = ["早上好", "哈哈哈", "收到", "晚安", "好的", "谢谢", "在吗", "吃了吗", "下班啦", "周末愉快", "嗯嗯", "辛苦了"]
    rows = []
    for i, (a, c) in enumerate(zip(acts, chat)):
        rows += [
            {"text": f"加V：user{a}abc 免费领{a}资料", "label": "ad"},
            {"text": f"{a}活动的效果一般怎么衡量？", "label": "question"},
            {"text": f"我们做了{a}活动，社群用户明显多了", "label": "on_topic"},
            {"text": c, "label": "off_topic"},
        ]
    data = _jsonl(tmp_path / "mine.jsonl", rows)
    out = tmp_path / "model"
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--topic", "私域运营 社群"])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["training"]["examples"] == len(rows)
    assert "user_validation" in meta["metrics"]
    p = _jsonl(tmp_path / "p.jsonl", [{"text": "加V：zzz999 免费领资料"}])
    r = runner.invoke(app, ["predict", str(p), "--model", str(out), "--topic", "私域运营 社群"])
    assert r.exit_code == 0 and json.loads(r.stdout)["label"] == "ad"
    # the shipped model's word vectors are reused by default; --embeddings none trains without
    shipped = json.loads((ROOT / "models" / "default" / "model.json").read_text(encoding="utf-8"))
    if shipped["features"].get("word_vectors"):
        assert meta["features"]["word_vectors"] == shipped["features"]["word_vectors"]
        assert (out / "embeddings.npz").is_file()
    # a retrained directory loses the stages fitted on the previous model's predictions
    for stale in ("context.json", "members.json"):
        shutil.copy(ROOT / "models" / "default" / stale, out / stale)
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--embeddings", "none"])  # and no --topic
    assert r.exit_code == 0, r.output
    assert not (out / "embeddings.npz").exists()
    assert not (out / "context.json").exists() and not (out / "members.json").exists()
    assert json.loads((out / "model.json").read_text(encoding="utf-8"))["features"]["word_vectors"] is None
    r = runner.invoke(app, ["train", str(data), "--out", str(out), "--embeddings", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "no word vectors" in r.output


def test_train_rejects_bad_labels(tmp_path):
    data = _jsonl(tmp_path / "bad.jsonl", [{"text": "x", "label": "nope"}])
    r = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and "nope" in r.output


@needs_default
def test_context_flag_warns_when_the_model_has_no_context_stage(tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(ROOT / "models" / "default", bare)
    (bare / "context.json").unlink()  # like a model from `groupscore train`
    src = _jsonl(tmp_path / "in.jsonl", [{"text": "装了", "label": "on_topic"}, {"text": "早上好", "label": "off_topic"}])
    sample = ROOT / "datasets" / "samples" / "qq_group.txt"
    score = ["score", str(sample), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "1"]
    for cmd in (["predict", str(src)], ["evaluate", str(src), "--json"], score):
        r = runner.invoke(app, [*cmd, "--model", str(bare), "--context"])
        assert r.exit_code == 0, r.output
        assert "has no context stage" in r.stderr
        shipped = runner.invoke(app, [*cmd, "--context"])  # the shipped model has one: no warning
        assert shipped.exit_code == 0 and "context stage" not in shipped.stderr
        alone = runner.invoke(app, [*cmd, "--model", str(bare)])  # no flag, no warning
        assert "context stage" not in alone.stderr


def test_ad_operating_points_count_by_hand():
    from classifier.evaluation import operating_points

    labels = ["ad", "question", "on_topic", "off_topic"]
    probs = [[0.95, 0.05, 0, 0], [0.85, 0.15, 0, 0], [0.6, 0.4, 0, 0], [0.3, 0.7, 0, 0], [0.1, 0, 0, 0.9]]
    gold = ["ad", "off_topic", "ad", "ad", "off_topic"]
    ops = {o["threshold"]: o for o in operating_points(probs, gold, thresholds=(0.5, 0.8, 0.9, 0.99), labels=labels)}
    # >= 0.5 flags rows 0-2 (two ads of three); >= 0.8 rows 0-1 (one ad); >= 0.9 row 0; >= 0.99 none
    assert ops[0.5] == {"threshold": 0.5, "flagged": 3, "precision": 0.6667, "recall": 0.6667}
    assert ops[0.8] == {"threshold": 0.8, "flagged": 2, "precision": 0.5, "recall": 0.3333}
    assert ops[0.9] == {"threshold": 0.9, "flagged": 1, "precision": 1.0, "recall": 0.3333}
    assert ops[0.99] == {"threshold": 0.99, "flagged": 0, "precision": None, "recall": 0.0}


def test_train_rejects_transformer_options_for_the_linear_backend(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "早上好", "label": "off_topic"}\n', encoding="utf-8")
    for extra in (["--lr", "0.1"], ["--max-len", "64"], ["--freeze-embeddings"], ["--epochs", "3"]):
        res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), *extra])
        assert res.exit_code == 1, extra
        assert "apply to --backend transformer only" in res.output
    assert not (tmp_path / "m").exists()


def test_predict_evaluate_train_read_gbk_and_utf16_and_fail_in_one_line(tmp_path):
    rows = [{"text": "有人知道模组怎么装吗", "label": "question"}, {"text": "加V领福利 私聊", "label": "ad"},
            {"text": "服务器的红石电路修好了", "label": "on_topic"}, {"text": "哈哈哈", "label": "off_topic"}]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    for name, encoding in (("gbk.jsonl", "gbk"), ("u16.jsonl", "utf-16")):
        (tmp_path / name).write_bytes(body.encode(encoding))
        r = runner.invoke(app, ["predict", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        assert [json.loads(line)["text"] for line in r.stdout.splitlines()] == [x["text"] for x in rows]
        r = runner.invoke(app, ["evaluate", str(tmp_path / name), "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["per_class"]["ad"]["support"] == 1
    r = runner.invoke(app, ["predict", "-"], input=body.encode("gbk"))  # stdin in GB18030
    assert r.exit_code == 0 and json.loads(r.stdout.splitlines()[1])["text"] == "加V领福利 私聊"
    csv_rows = "text,label\n" + "".join(f"{x['text']},{x['label']}\n" for x in rows * 30)
    (tmp_path / "gbk.csv").write_bytes(csv_rows.encode("gbk"))
    r = runner.invoke(app, ["train", str(tmp_path / "gbk.csv"), "--out", str(tmp_path / "m"), "--embeddings", "none",
                            "--val-percent", "0"])
    assert r.exit_code == 0, r.output
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 40)
    for cmd in (["predict", str(tmp_path / "junk.bin")], ["evaluate", str(tmp_path / "junk.bin")],
                ["train", str(tmp_path / "junk.bin"), "--out", str(tmp_path / "m2")]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1, r.output


SAMPLE_DIR = Path(__file__).resolve().parent.parent / "datasets" / "samples"


def test_a_forced_format_that_reads_nothing_is_an_error(tmp_path):
    r = runner.invoke(app, ["score", str(SAMPLE_DIR / "generic.csv"), "--format", "qq_txt", "--out", str(tmp_path / "o"),
                            "--quiet", "--jobs", "1"])
    assert r.exit_code == 1 and "no message read" in r.output and "--format qq_txt" in r.output
    r = runner.invoke(app, ["score", str(SAMPLE_DIR / "telegram_result.json"), "--format", "discord_json",
                            "--out", str(tmp_path / "o2"), "--quiet", "--jobs", "1"])
    assert r.exit_code == 1 and "read as system notices" in r.output


def test_quiet_still_warns_about_skipped_records(tmp_path):
    lines = (SAMPLE_DIR / "generic.jsonl").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "mixed.jsonl"
    bad.write_text("\n".join(lines[:5] + ["not json"] + lines[5:]) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["score", str(bad), "--quiet", "--out", str(tmp_path / "o"), "--jobs", "1"])
    assert r.exit_code == 0 and r.stdout == ""
    assert "warning: 1 malformed records skipped" in r.stderr


def test_score_reads_an_export_from_stdin(tmp_path):
    data = (SAMPLE_DIR / "qq_group.txt").read_bytes()
    piped = runner.invoke(app, ["score", "-", "--out", str(tmp_path / "a"), "--quiet", "--jobs", "1"], input=data)
    assert piped.exit_code == 0, piped.output
    direct = runner.invoke(app, ["score", str(SAMPLE_DIR / "qq_group.txt"), "--out", str(tmp_path / "b"), "--quiet",
                                 "--jobs", "1"])
    assert direct.exit_code == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "b" / "report.json").read_text(encoding="utf-8"))
    assert a["groups"] == b["groups"] and a["inputs"][0]["read"] == b["inputs"][0]["read"] > 0
    r = runner.invoke(app, ["score", "-", "-", "--out", str(tmp_path / "c")], input=data)
    assert r.exit_code == 1 and "stdin (-) can be given once" in r.output
