"""The HTTP service: every route and every error path, in process and as a real server.

A small rule-based fake stands in for the model so expectations can be worked out by hand;
one test runs the real default model when ``models/default/model.json`` exists.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from fastapi.testclient import TestClient

from classifier.base import LABELS, Classifier, GroupscoreError, Prediction, Topic
from classifier.server import ServerSettings, create_app, read_topics_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "default"


class FakeClassifier:
    """Deterministic rules: ``加V`` -> ad, ends with ？/? -> question, a topic keyword ->
    on_topic, else off_topic. Relevance = share of topic keywords present in the text.

    It records the topics it was called with so tests can check topic routing.
    """

    labels = LABELS

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Topic | str | None]] = []
        self.make_topic_calls = 0

    def _one(self, text: str, topic: Topic | str | None) -> Prediction:
        kws: tuple[str, ...] = ()
        if isinstance(topic, Topic):
            kws = topic.keywords
        elif isinstance(topic, str):
            kws = tuple(topic.split())
        hits = [k for k in kws if k in text]
        rel = len(hits) / len(kws) if kws else 0.0
        if "加V" in text:
            label, why = "ad", ["pattern:加V"]
        elif text.endswith(("？", "?")):
            label, why = "question", ["ends with ？"]
        elif hits:
            label, why = "on_topic", [f"keyword:{k}" for k in hits]
        else:
            label, why = "off_topic", []
        probs = {lab: (0.7 if lab == label else 0.1) for lab in LABELS}
        return Prediction(label=label, probs=probs, relevance=rel, explanation=why)

    def predict(self, texts, topic=None):
        if isinstance(texts, str):
            self.calls.append(([texts], topic))
            return self._one(texts, topic)
        self.calls.append((list(texts), topic))
        return [self._one(t, topic) for t in texts]

    def predict_proba(self, texts: Sequence[str], topic: Topic | str | None = None) -> tuple[np.ndarray, np.ndarray]:
        preds = [self._one(t, topic) for t in texts]
        return (
            np.array([[p.probs[lab] for lab in LABELS] for p in preds]),
            np.array([p.relevance for p in preds]),
        )

    def make_topic(self, description: str | None = None, texts: Sequence[str] | None = None) -> Topic:
        self.make_topic_calls += 1
        if description is None:
            return Topic(keywords=("induced",), source="induced")
        return Topic(description=description, keywords=tuple(description.split()), source="given")

    def info(self) -> dict[str, Any]:
        return {"backend": "fake", "version": "0.0-test", "metrics": {"macro_f1": 0.5}, "labels": list(LABELS)}

    def save(self, path: str | Path) -> None:  # pragma: no cover - not used by the server
        raise NotImplementedError


class BrokenClassifier(FakeClassifier):
    """Raises with chat text in the message, to check it never reaches the logs."""

    def predict(self, texts, topic=None):
        raise RuntimeError(f"boom while reading {texts!r}")


def client_for(clf: Classifier | None = None, **settings: Any) -> TestClient:
    return TestClient(create_app(clf or FakeClassifier(), ServerSettings(**settings)), raise_server_exceptions=False)


@pytest.fixture
def client() -> TestClient:
    return client_for()


# --------------------------------------------------------------------------- happy paths


def test_fake_satisfies_protocol() -> None:
    assert isinstance(FakeClassifier(), Classifier)


def test_health(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_model_info(client: TestClient) -> None:
    r = client.get("/v1/model")
    assert r.status_code == 200
    body = r.json()
    assert body["labels"] == list(LABELS)
    assert body["version"] == "0.0-test"
    assert body["metrics"] == {"macro_f1": 0.5}


def test_model_info_adds_labels_when_info_lacks_them() -> None:
    clf = FakeClassifier()
    clf.info = lambda: {"backend": "fake"}  # type: ignore[method-assign]
    assert client_for(clf).get("/v1/model").json() == {"backend": "fake", "labels": list(LABELS)}


def test_classify_one(client: TestClient) -> None:
    r = client.post("/v1/classify", json={"text": "我们用企业微信做社群转化", "topic": "社群 转化 私域"})
    assert r.status_code == 200
    body = r.json()
    assert body["label"] == "on_topic"
    assert body["probs"] == {"ad": 0.1, "question": 0.1, "on_topic": 0.7, "off_topic": 0.1}
    assert body["relevance"] == pytest.approx(2 / 3, abs=1e-4)  # 社群, 转化 of 3 keywords
    assert body["explanation"] == ["keyword:社群", "keyword:转化"]


def test_classify_ad_and_question(client: TestClient) -> None:
    assert client.post("/v1/classify", json={"text": "加V：abc123 免费领资料"}).json()["label"] == "ad"
    assert client.post("/v1/classify", json={"text": "有人用过吗？", "sender": "小王"}).json()["label"] == "question"


def test_classify_without_topic_passes_none() -> None:
    clf = FakeClassifier()
    client_for(clf).post("/v1/classify", json={"text": "早上好"})
    assert clf.calls == [(["早上好"], None)]


def test_group_selects_configured_topic() -> None:
    clf = FakeClassifier()
    c = client_for(clf, topics={"增长群": "裂变 转化"})
    body = c.post("/v1/classify", json={"text": "裂变活动效果不错", "group": "增长群"}).json()
    assert body["label"] == "on_topic" and body["relevance"] == 0.5
    # An explicit topic wins over the group's configured one.
    body = c.post("/v1/classify", json={"text": "裂变活动效果不错", "group": "增长群", "topic": "游戏"}).json()
    assert body["label"] == "off_topic"
    # An unknown group means no topic.
    c.post("/v1/classify", json={"text": "x", "group": "别的群"})
    assert clf.calls[-1][1] is None


def test_batch_keeps_order_and_groups_by_topic() -> None:
    clf = FakeClassifier()
    msgs = [
        {"text": "加V领资料"},
        {"text": "转化率怎么算？"},
        {"text": "游戏更新了", "topic": "游戏"},
        {"text": "转化率提升了"},
        {"text": "哈哈哈"},
    ]
    r = client_for(clf).post("/v1/classify/batch", json={"messages": msgs, "topic": "转化率"})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == ["ad", "question", "on_topic", "on_topic", "off_topic"]
    assert [p["relevance"] for p in preds] == [0.0, 1.0, 1.0, 1.0, 0.0]
    # One model call per distinct topic, not one per message.
    assert len(clf.calls) == 2
    assert sorted(len(texts) for texts, _ in clf.calls) == [1, 4]


def test_topic_expansion_is_cached() -> None:
    clf = FakeClassifier()
    c = client_for(clf)
    for _ in range(3):
        c.post("/v1/classify", json={"text": "a", "topic": "运营 增长"})
    assert clf.make_topic_calls == 1


def test_batch_empty(client: TestClient) -> None:
    r = client.post("/v1/classify/batch", json={"messages": []})
    assert r.status_code == 200 and r.json() == {"predictions": []}


def test_extra_fields_are_ignored(client: TestClient) -> None:
    r = client.post("/v1/classify", json={"text": "早上好", "msg_id": "m1", "whatever": [1, 2]})
    assert r.status_code == 200 and r.json()["label"] == "off_topic"


def test_openapi_lists_v1_routes(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert set(schema["paths"]) >= {"/v1/classify", "/v1/classify/batch", "/v1/score", "/v1/health", "/v1/model"}
    classify = schema["paths"]["/v1/classify"]["post"]
    ref = classify["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ClassifyRequest")
    assert "text" in schema["components"]["schemas"]["ClassifyRequest"]["required"]
    assert "413" in classify["responses"] and "401" in classify["responses"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


# --------------------------------------------------------------------------- /v1/score

def _score_payload() -> dict[str, Any]:
    return {
        "group": "增长群",
        "topic": "转化 裂变",
        "members": 10,
        "messages": [
            {"sender": "甲", "sender_id": "u1", "time": "2024-03-04T09:00:00", "text": "裂变活动转化怎么做？", "msg_id": "1"},
            {"sender": "乙", "sender_id": "u2", "time": "2024-03-04T09:05:00", "text": "先做分层再裂变", "msg_id": "2", "reply_to": "1"},
            {"sender": "丙", "sender_id": "u3", "time": "2024-03-04T09:06:00", "text": "加V领资料", "msg_id": "3"},
            {"sender": "丁", "sender_id": "u4", "time": "2024-03-04T09:07:00", "text": "哈哈", "msg_id": "4"},
            {"sender": "", "time": "2024-03-04T09:08:00", "text": "戊 加入了群聊", "kind": "system", "msg_id": "5"},
        ],
    }


def test_score_matches_library_call() -> None:
    scoring_mod = pytest.importorskip("classifier.scoring", reason="classifier/scoring.py not in the repo yet")
    from datetime import datetime

    from classifier.records import Message

    payload = _score_payload()
    r = client_for().post("/v1/score", json=payload)
    assert r.status_code == 200, r.text
    clf = FakeClassifier()
    msgs = [
        Message(group="增长群", sender=m["sender"], sender_id=m.get("sender_id", ""),
                time=datetime.fromisoformat(m["time"]), text=m["text"], kind=m.get("kind", "text"),
                msg_id=m["msg_id"], reply_to=m.get("reply_to", ""))
        for m in payload["messages"]
    ]
    expected = scoring_mod.score_messages(msgs, clf, topic=clf.make_topic("转化 裂变"), members=10, group="增长群")
    # Same object as the library gives, through JSON.
    got = r.json()
    assert got == json.loads(json.dumps(expected, default=str, ensure_ascii=False))
    # By hand (fake rules): 甲 question (relevance 1.0), 乙 on_topic, 丙 ad, 丁 chatter, 1 system.
    assert got["group"] == "增长群"
    assert got["effective_messages"] == 2
    assert got["effective_activity"] == 20.0  # 2 effective members / 10 members
    assert got["verticality_labelled"] == 66.7  # 2 / (5 - 1 system - 1 ad)
    # expected numbers (this fake: 0.7 on its label, 0.1 on each other): p(effective) 0.7 + 0.1
    # for 甲 and 乙 (both relevant), 0.1 for 丙 and 丁; p(ad) 0.7 for 丙, 0.1 for the three others
    assert got["verticality"] == 60.0  # (2 * 0.8 + 2 * 0.1) / (4 - 1.0)
    assert got["ad_rate"] == 25.0  # 1 / (5 - 1 system)


def test_score_relevance_threshold_is_passed_on() -> None:
    pytest.importorskip("classifier.scoring", reason="classifier/scoring.py not in the repo yet")
    payload = _score_payload()
    payload["topic"] = "转化 裂变 分层"  # the question hits 2 of 3 keywords: relevance 0.667
    c = client_for()
    assert c.post("/v1/score", json=payload).json()["effective_messages"] == 2
    payload["relevance_threshold"] = 0.9
    got = c.post("/v1/score", json=payload).json()
    assert got["effective_messages"] == 1  # only 乙's answer
    assert got["verticality"] == 33.3
    payload["relevance_threshold"] = 1.5
    assert c.post("/v1/score", json=payload).status_code == 422


def test_score_bad_kind_is_422(client: TestClient) -> None:
    payload = _score_payload()
    payload["messages"][0]["kind"] = "hologram"
    r = client.post("/v1/score", json=payload)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert "messages.0.kind" in r.json()["detail"]


def test_score_bad_time_and_members_are_422(client: TestClient) -> None:
    payload = _score_payload()
    payload["messages"][1]["time"] = "yesterday-ish"
    payload["members"] = 0
    r = client.post("/v1/score", json=payload)
    assert r.status_code == 422
    locs = {e["loc"] for e in r.json()["errors"]}
    assert locs == {"body.messages.1.time", "body.members"}


def test_score_limits() -> None:
    c = client_for(max_score_messages=3, max_text_chars=10)
    r = c.post("/v1/score", json=_score_payload())
    assert r.status_code == 413 and r.json()["error"] == "batch_too_large"
    payload = _score_payload()
    payload["messages"] = payload["messages"][:2]
    payload["messages"][1]["text"] = "长" * 11
    r = c.post("/v1/score", json=payload)
    assert r.status_code == 413 and r.json()["error"] == "text_too_long"
    assert "messages[1]" in r.json()["detail"]


# --------------------------------------------------------------------------- limits


def test_body_too_large_by_content_length() -> None:
    clf = FakeClassifier()
    c = client_for(clf, max_body_bytes=100)
    r = c.post("/v1/classify", json={"text": "字" * 200})
    assert r.status_code == 413
    assert r.json()["error"] == "body_too_large"
    assert "100 bytes" in r.json()["detail"]
    assert clf.calls == []


def test_body_too_large_when_chunked() -> None:
    # A generator body is sent chunked, without Content-Length: the guard must count bytes.
    clf = FakeClassifier()
    c = client_for(clf, max_body_bytes=100)

    def chunks():
        yield b'{"text": "'
        for _ in range(20):
            yield b"aaaaaaaaaa"
        yield b'"}'

    r = c.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert clf.calls == []


def test_chunked_body_under_limit_is_served() -> None:
    c = client_for(max_body_bytes=1000)

    def chunks():
        yield '{"text": "加V'.encode()
        yield '领资料"}'.encode()

    r = c.post("/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["label"] == "ad"


def test_body_exactly_at_limit_is_served() -> None:
    body = json.dumps({"text": "早"}).encode()
    c = client_for(max_body_bytes=len(body))
    assert c.post("/v1/classify", content=body, headers={"Content-Type": "application/json"}).status_code == 200


def test_invalid_content_length_is_400(client: TestClient) -> None:
    r = client.post("/v1/classify", content=b'{"text": "a"}', headers={"Content-Type": "application/json", "Content-Length": "abc"})
    assert r.status_code == 400


def test_batch_too_large() -> None:
    clf = FakeClassifier()
    r = client_for(clf, max_batch=3).post("/v1/classify/batch", json={"messages": [{"text": "a"}] * 4})
    assert r.status_code == 413
    assert r.json() == {"error": "batch_too_large", "detail": "4 messages in one request, the limit is 3"}
    assert clf.calls == []
    assert client_for(max_batch=3).post("/v1/classify/batch", json={"messages": [{"text": "a"}] * 3}).status_code == 200


def test_text_too_long() -> None:
    c = client_for(max_text_chars=5)
    r = c.post("/v1/classify", json={"text": "一二三四五六"})
    assert r.status_code == 413
    assert r.json()["error"] == "text_too_long"
    assert "6 characters, the limit is 5" in r.json()["detail"]
    # Characters, not bytes: five Chinese characters (15 UTF-8 bytes) pass.
    assert c.post("/v1/classify", json={"text": "一二三四五"}).status_code == 200
    r = c.post("/v1/classify/batch", json={"messages": [{"text": "a"}, {"text": "一二三四五六"}]})
    assert r.status_code == 413 and "messages[1]" in r.json()["detail"]


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("body", [b"{not json", b'{"text": "a"', b"\xff\xfe\x00", b'{"text": "a"}}'])
def test_malformed_json_is_400(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/classify", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_json"


@pytest.mark.parametrize(
    "payload, loc",
    [
        ({}, "body.text"),
        ({"text": 42}, "body.text"),
        ({"text": None}, "body.text"),
        ([1, 2], "body"),
        ("just a string", "body"),
    ],
)
def test_wrong_shape_is_422(client: TestClient, payload: Any, loc: str) -> None:
    r = client.post("/v1/classify", json=payload)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["errors"][0]["loc"] == loc


def test_422_does_not_echo_input(client: TestClient) -> None:
    r = client.post("/v1/classify/batch", json={"messages": [{"text": "秘密内容 13800000000", "topic": ["x"]}]})
    assert r.status_code == 422
    assert "秘密内容" not in r.text and "13800000000" not in r.text


def test_batch_messages_wrong_type_is_422(client: TestClient) -> None:
    r = client.post("/v1/classify/batch", json={"messages": "hello"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "body.messages"


def test_empty_body_is_422(client: TestClient) -> None:
    r = client.post("/v1/classify", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_form_body_is_415(client: TestClient) -> None:
    # What `curl -d` sends when the Content-Type header is forgotten.
    r = client.post("/v1/classify", content=b'{"text": "a"}', headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert "application/json" in r.json()["detail"]


def test_unknown_route_and_method(client: TestClient) -> None:
    assert client.get("/v1/nope").status_code == 404
    r = client.get("/v1/classify")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_scorer_error_is_422(monkeypatch: pytest.MonkeyPatch) -> None:
    scoring_mod = pytest.importorskip("classifier.scoring", reason="classifier/scoring.py not in the repo yet")

    def refuse(*args: Any, **kwargs: Any) -> dict:
        raise GroupscoreError("no messages to score\nsecond line dropped")

    monkeypatch.setattr(scoring_mod, "score_messages", refuse)
    r = client_for().post("/v1/score", json={"messages": []})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid_input", "detail": "no messages to score"}


def test_internal_error_is_500_and_logs_no_text(caplog: pytest.LogCaptureFixture) -> None:
    c = client_for(BrokenClassifier())
    with caplog.at_level("DEBUG"):
        r = c.post("/v1/classify", json={"text": "私密消息内容"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "detail": "internal server error"}
    assert "私密消息内容" not in r.text
    assert "RuntimeError" in caplog.text
    assert "私密消息内容" not in caplog.text
    # The service survives: the next request is answered.
    assert c.get("/v1/health").status_code == 200


# --------------------------------------------------------------------------- token


def test_token_required_everywhere_but_health() -> None:
    c = client_for(token="s3cret-token")
    assert c.get("/v1/health").status_code == 200
    for method, path, body in [
        ("GET", "/v1/model", None),
        ("POST", "/v1/classify", {"text": "a"}),
        ("POST", "/v1/classify/batch", {"messages": []}),
        ("POST", "/v1/score", {"messages": []}),
        ("GET", "/openapi.json", None),
        ("GET", "/v1/unknown", None),
    ]:
        r = c.request(method, path, json=body)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized"


def test_wrong_token_and_scheme_are_401() -> None:
    c = client_for(token="s3cret-token")
    for header in ["Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-token2", "Basic s3cret-token", "s3cret-token", "Bearer "]:
        r = c.post("/v1/classify", json={"text": "a"}, headers={"Authorization": header})
        assert r.status_code == 401, header


def test_right_token_is_accepted() -> None:
    c = client_for(token="s3cret-token")
    auth = {"Authorization": "Bearer s3cret-token"}
    assert c.post("/v1/classify", json={"text": "加V"}, headers=auth).json()["label"] == "ad"
    assert c.get("/v1/model", headers={"Authorization": "bearer s3cret-token"}).status_code == 200


def test_token_checked_before_body_is_read() -> None:
    # An unauthenticated client gets 401, not a parse or size error that reveals the limits.
    c = client_for(token="t", max_body_bytes=10)
    assert c.post("/v1/classify", content=b"x" * 100, headers={"Content-Type": "application/json"}).status_code == 401
    assert c.post("/v1/classify", content=b"{bad", headers={"Content-Type": "application/json"}).status_code == 401


# --------------------------------------------------------------------------- logging


def test_no_request_data_logged_by_default(caplog: pytest.LogCaptureFixture) -> None:
    c = client_for()
    with caplog.at_level("DEBUG"):
        c.post("/v1/classify", json={"text": "私密消息内容", "sender": "张三"})
        c.post("/v1/classify", content=b"{bad", headers={"Content-Type": "application/json"})
    assert "私密消息内容" not in caplog.text and "张三" not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("groupscore")]


def test_log_requests_logs_only_method_path_status(caplog: pytest.LogCaptureFixture) -> None:
    c = client_for(log_requests=True)
    with caplog.at_level("INFO", logger="groupscore.server"):
        c.post("/v1/classify?user=张三", json={"text": "私密消息内容"})
    lines = [r.getMessage() for r in caplog.records if r.name == "groupscore.server"]
    assert len(lines) == 1
    assert lines[0].startswith("POST /v1/classify 200 ")
    assert lines[0].endswith("ms")
    assert "私密" not in caplog.text and "张三" not in caplog.text


# --------------------------------------------------------------------------- settings


def test_settings_from_env(tmp_path: Path) -> None:
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps({"增长群": "裂变 转化"}, ensure_ascii=False), encoding="utf-8")
    s = ServerSettings.from_env(
        {
            "GROUPSCORE_MAX_BODY_BYTES": "2048",
            "GROUPSCORE_MAX_BATCH": "7",
            "GROUPSCORE_MAX_TEXT_CHARS": "99",
            "GROUPSCORE_MAX_SCORE_MESSAGES": "500",
            "GROUPSCORE_TOKEN": "abc",
            "GROUPSCORE_LOG_REQUESTS": "yes",
            "GROUPSCORE_TOPICS": str(topics),
        }
    )
    assert (s.max_body_bytes, s.max_batch, s.max_text_chars, s.max_score_messages) == (2048, 7, 99, 500)
    assert s.token == "abc" and s.log_requests is True and s.topics == {"增长群": "裂变 转化"}
    assert ServerSettings.from_env({}) == ServerSettings()
    assert ServerSettings.from_env({"GROUPSCORE_TOKEN": ""}).token is None


def test_settings_token_file(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("  from-file  \n", encoding="utf-8")
    assert ServerSettings.from_env({"GROUPSCORE_TOKEN_FILE": str(f)}).token == "from-file"
    f.write_text("\n", encoding="utf-8")
    with pytest.raises(GroupscoreError, match="empty"):
        ServerSettings.from_env({"GROUPSCORE_TOKEN_FILE": str(f)})


@pytest.mark.parametrize(
    "env, message",
    [
        ({"GROUPSCORE_MAX_BATCH": "ten"}, "GROUPSCORE_MAX_BATCH must be an integer"),
        ({"GROUPSCORE_MAX_BATCH": "0"}, "max_batch must be a positive integer"),
        ({"GROUPSCORE_LOG_REQUESTS": "maybe"}, "GROUPSCORE_LOG_REQUESTS must be true/false"),
        ({"GROUPSCORE_TOPICS": "/nonexistent/topics.json"}, "cannot read topics file"),
        ({"GROUPSCORE_TOKEN_FILE": "/nonexistent/token"}, "cannot read token file"),
    ],
)
def test_settings_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(GroupscoreError, match=message):
        ServerSettings.from_env(env)


def test_topics_file_must_be_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text('["a", "b"]', encoding="utf-8")
    with pytest.raises(GroupscoreError, match="must map group names"):
        read_topics_file(f)
    f.write_text("{oops", encoding="utf-8")
    with pytest.raises(GroupscoreError, match="not valid JSON"):
        read_topics_file(f)


# --------------------------------------------------------------------------- real model


def _real_model() -> Path:
    if not (DEFAULT_MODEL / "model.json").is_file():
        pytest.skip("models/default/model.json not built yet")
    return DEFAULT_MODEL


def test_real_model_in_process() -> None:
    from classifier import load_model

    clf = load_model(_real_model())
    c = client_for(clf)
    body = c.post("/v1/classify", json={"text": "加V：abc123 免费领资料，兼职刷单日结200"}).json()
    assert body["label"] == "ad"
    assert set(body["probs"]) == set(LABELS)
    assert sum(body["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    batch = c.post(
        "/v1/classify/batch",
        json={"messages": [{"text": "早上好"}, {"text": "私域转化率一般怎么算？"}], "topic": "私域运营 社群 转化"},
    ).json()["predictions"]
    assert len(batch) == 2 and all(0.0 <= p["relevance"] <= 1.0 for p in batch)
    assert c.get("/v1/model").json()["labels"] == list(LABELS)
    report = c.post("/v1/score", json={k: v for k, v in _score_payload().items() if k != "topic"}).json()
    assert (report["messages"], report["system"], report["members_base"]) == (5, 1, 10)
    assert report["topic"]["source"] == "induced"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Invented examples, just enough for the linear backend to train a tiny model.
_TINY = {
    "ad": ["加V：abc123 免费领资料", "兼职刷单日结200，私聊", "扫码进群领券", "代理招募，一件代发", "出二手账号 100r 私聊"],
    "question": ["私域转化率一般怎么算？", "有人用过企业微信的群发吗", "求推荐一本讲用户增长的书", "社群怎么做激活？", "裂变活动有什么坑？"],
    "on_topic": ["上周做了裂变活动，转化率从3%涨到了8%", "建议先做用户分层再设计激活路径", "社群运营要持续输出内容",
                 "企业微信群发每天有次数限制", "私域的核心是复购"],
    "off_topic": ["早上好", "哈哈哈", "收到", "今晚吃火锅吗", "[表情]"],
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped default model, else a tiny linear model trained here."""
    if (DEFAULT_MODEL / "model.json").is_file():
        return DEFAULT_MODEL
    linear = pytest.importorskip("classifier.linear", reason="no models/default and no linear backend to build one")
    from classifier.base import Example

    examples = [
        Example(text, label, topic="私域运营 社群" if label in ("question", "on_topic") else "")
        for label, texts in _TINY.items()
        for text in texts
    ]
    path = tmp_path_factory.mktemp("tiny_model")
    linear.LinearClassifier(folds=2, min_df=1).fit(examples).save(
        path, training={"n_examples": len(examples), "source": "tests/test_server.py"}, metrics={}
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_real_server_process(tmp_path: Path, model_dir: Path, workers: int) -> None:
    import httpx

    port = _free_port()
    token_file = tmp_path / "token"
    token_file.write_text("proc-token\n", encoding="utf-8")
    env = {**os.environ, "GROUPSCORE_MAX_BATCH": "5"}
    env.pop("GROUPSCORE_TOKEN", None)
    log = tmp_path / "server.log"
    cmd = [sys.executable, str(ROOT / "serve.py"), "--port", str(port), "--model", str(model_dir),
           "--workers", str(workers), "--token-file", str(token_file)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"server exited early: {log.read_text(errors='replace')}"
                try:
                    if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not become healthy within 60 s"
                time.sleep(0.2)
            auth = {"Authorization": "Bearer proc-token"}
            with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
                for _ in range(2 * workers):  # more than one connection's worth, so both workers answer
                    r = http.post("/v1/classify", json={"text": "加V：abc123 免费领资料"})
                    assert r.status_code == 200 and r.json()["label"] == "ad"
                r = http.post("/v1/classify/batch", json={"messages": [{"text": "早上好"}] * 6})
                assert r.status_code == 413  # the env limit reached the server (and its workers)
                r = http.post("/v1/classify/batch", json={"messages": [{"text": "早上好"}, {"text": "加V领资料"}]})
                assert [p["label"] for p in r.json()["predictions"]][1] == "ad"
                assert http.get("/v1/model").json()["labels"] == list(LABELS)
            assert httpx.post(f"{base}/v1/classify", json={"text": "a"}).status_code == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "免费领资料" not in text and "proc-token" not in text  # no request data, no secret in the output


def test_serve_py_bad_model_is_one_line_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--model", str(tmp_path / "nope")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: not a groupscore model directory (no model.json): {tmp_path / 'nope'}"]


def test_serve_py_port_out_of_range_is_one_line_error() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--port", "99999"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: --port must be between 0 and 65535, got 99999"]


def test_score_member_confidence_is_passed_on() -> None:
    # The fake gives its label 0.7 and every other label 0.1: 甲's question and 乙's answer are
    # effective with p(on_topic) + p(question) = 0.8, above the default member confidence (0.75).
    payload = _score_payload()
    c = client_for()
    assert c.post("/v1/score", json=payload).json()["effective_members"] == 2
    payload["member_confidence"] = 0.9
    got = c.post("/v1/score", json=payload).json()
    assert got["effective_members"] == 0 and got["effective_members_any"] == 2
    assert got["effective_messages"] == 2  # messages are unaffected
    payload["member_confidence"] = -0.1
    assert c.post("/v1/score", json=payload).status_code == 422
