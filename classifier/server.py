"""The HTTP scoring service (SPEC §6): classify messages and score groups over HTTP.

The app depends only on the :class:`~classifier.base.Classifier` protocol, so any backend (or
a test double) can sit underneath::

    from classifier import load_model
    from classifier.server import ServerSettings, create_app

    app = create_app(load_model(), ServerSettings(token="s3cret"))
    # uvicorn.run(app, host="127.0.0.1", port=8000, access_log=False)

Routes (all under ``/v1``; every one but ``/v1/health`` needs the bearer token when set):

- ``POST /v1/classify``        one message  -> ``{label, probs, relevance, explanation}``
- ``POST /v1/classify/batch``  many messages -> ``{predictions: [...]}`` in request order
- ``POST /v1/score``           one group's messages -> the per-group object of ``report.json``
- ``GET  /v1/health``          liveness, never needs the token
- ``GET  /v1/model``           ``classifier.info()``: labels, backend, version, metrics

Errors are JSON ``{"error": <code>, "detail": <one line>}``:

- 400 ``malformed_json`` (body is not JSON) / ``bad_request``;
- 401 ``unauthorized`` (token missing or wrong; carries ``WWW-Authenticate: Bearer``);
- 413 ``body_too_large``, ``batch_too_large``, ``text_too_long`` — every configured size limit
  answers 413, whether it is the raw body, the number of messages or one message's length;
- 415 ``unsupported_media_type`` (body not sent as ``application/json``);
- 422 ``invalid_request`` (well-formed JSON of the wrong shape; ``errors`` lists where) or
  ``invalid_input`` (the scorer rejected the content);
- 500 ``internal_error`` (logged by exception type and code location only).

Chat text is personal data: nothing from a request body is ever logged or echoed back in an
error, uvicorn's access log is off, and the opt-in request log has method, path, status and
latency only.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

import orjson
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, load_model
from .base import Classifier, GroupscoreError, Topic
from .records import KINDS, Message

logger = logging.getLogger("groupscore.server")

# Paths reachable without the token: only liveness (load balancers and orchestrators poll it).
OPEN_PATHS = frozenset({"/v1/health"})

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


# --------------------------------------------------------------------------- settings


@dataclass
class ServerSettings:
    """Limits and switches of one service instance.

    ``token`` ``None`` (or empty) means no authentication. ``topics`` maps a group name to a
    topic description, used when a request names a ``group`` but gives no ``topic``.

    >>> ServerSettings.from_env({"GROUPSCORE_MAX_BATCH": "50"}).max_batch
    50
    """

    max_body_bytes: int = 10 * 1024 * 1024
    max_batch: int = 1000  # messages per /v1/classify/batch
    max_score_messages: int = 50_000  # messages per /v1/score (one group's export)
    max_text_chars: int = 5000  # per message, after JSON decoding
    token: str | None = None
    log_requests: bool = False
    topics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_batch", "max_score_messages", "max_text_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise GroupscoreError(f"{name} must be a positive integer, got {value!r}")
        if not self.token:
            self.token = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        """Read ``GROUPSCORE_<FIELD>`` variables (e.g. ``GROUPSCORE_MAX_BATCH``).

        ``GROUPSCORE_TOKEN`` sets the token, ``GROUPSCORE_TOKEN_FILE`` reads it from a file
        (keeps it out of process listings); ``GROUPSCORE_TOPICS`` names a JSON file
        ``{"group name": "topic description", ...}``.
        """
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"GROUPSCORE_{f.name.upper()}")
            if raw is None or f.name in ("token", "topics"):
                continue
            if f.name == "log_requests":
                kwargs[f.name] = _parse_bool(f"GROUPSCORE_{f.name.upper()}", raw)
            else:
                try:
                    kwargs[f.name] = int(raw)
                except ValueError:
                    raise GroupscoreError(
                        f"GROUPSCORE_{f.name.upper()} must be an integer, got {raw!r}"
                    ) from None
        token = env.get("GROUPSCORE_TOKEN") or None
        token_file = env.get("GROUPSCORE_TOKEN_FILE")
        if token_file and not token:
            token = read_token_file(token_file)
        kwargs["token"] = token
        topics_file = env.get("GROUPSCORE_TOPICS")
        if topics_file:
            kwargs["topics"] = read_topics_file(topics_file)
        return cls(**kwargs)


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise GroupscoreError(f"{name} must be true/false, got {raw!r}")


def read_token_file(path: str | Path) -> str:
    """The token is the file's first line, surrounding whitespace stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise GroupscoreError(f"cannot read token file {path}: {err.strerror}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise GroupscoreError(f"token file {path} is empty")
    return token


def read_topics_file(path: str | Path) -> dict[str, str]:
    """``{"group": "topic description"}`` from a JSON file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise GroupscoreError(f"cannot read topics file {path}: {err.strerror}") from None
    except ValueError as err:
        raise GroupscoreError(f"topics file {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise GroupscoreError(f'topics file {path} must map group names to descriptions: {{"group": "topic"}}')
    return data


# --------------------------------------------------------------------------- request/response models


class _In(BaseModel):
    # Unknown fields are ignored so bots can send their own ids and metadata along.
    model_config = ConfigDict(extra="ignore")


class ClassifyRequest(_In):
    text: str = Field(description="The message text.", examples=["有人用过企业微信的群发吗"])
    group: str | None = Field(None, description="Group name; selects a configured topic when `topic` is absent.")
    topic: str | None = Field(None, description="The group's topic: description or keywords.", examples=["私域运营 社群 企业微信"])
    sender: str | None = Field(None, description="Sender name; accepted for symmetry with /v1/score, not used to classify.")


class BatchItem(ClassifyRequest):
    pass


class BatchRequest(_In):
    messages: list[BatchItem]
    topic: str | None = Field(None, description="Topic for messages that carry none.")
    group: str | None = Field(None, description="Group for messages that carry none.")


class PredictionOut(BaseModel):
    label: Literal["ad", "question", "on_topic", "off_topic"]
    probs: dict[str, float] = Field(description="Probability of each label.")
    relevance: float = Field(ge=0, le=1, description="Relevance to the group's topic.")
    explanation: list[str] = Field(description="Features or patterns behind the verdict.")


class BatchResponse(BaseModel):
    predictions: list[PredictionOut]


KindName = Literal[KINDS]  # type: ignore[valid-type]  # Literal over the runtime tuple of kinds


class ScoreMessage(_In):
    sender: str
    sender_id: str = ""
    time: datetime | None = Field(None, description="ISO 8601 (or Unix seconds).")
    text: str = ""
    kind: KindName = "text"  # type: ignore[assignment]
    msg_id: str = ""
    reply_to: str = Field("", description="msg_id of the message this one replies to.")


class ScoreRequest(_In):
    group: str = ""
    topic: str | None = Field(None, description="Topic description/keywords; induced from the messages when absent.")
    members: int | None = Field(None, ge=1, description="Member count; distinct senders are used when absent.")
    admins: list[str] = Field(default_factory=list, description="Sender ids/names of the group's admins.")
    relevance_threshold: float | None = Field(
        None, ge=0, le=1, description="Relevance a question needs to count as effective; the model default when absent."
    )
    member_confidence: float | None = Field(
        None, ge=0, le=1,
        description="A fixed bar: count a member on an effective message with p(effective) at least this "
                    "(0 = any). Absent: the model's member rule, which asks more of members who post more.",
    )
    messages: list[ScoreMessage]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str


class ErrorResponse(BaseModel):
    error: str
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc}
    for code, desc in (
        (400, "Malformed JSON"),
        (401, "Missing or wrong bearer token"),
        (413, "Body, batch or text over the configured limit"),
        (415, "Body not sent as application/json"),
        (422, "JSON of the wrong shape"),
    )
}


# --------------------------------------------------------------------------- helpers


class ApiError(Exception):
    """An error answered as ``{"error": code, "detail": detail}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson directly: FastAPI's default encoder walks every nested value in Python, which
    # costs more than the classification itself for a small model.
    return Response(orjson.dumps(obj, option=_JSON_OPTS), status_code=status, headers=headers, media_type="application/json")


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return _json({"error": code, "detail": detail, **extra}, status, headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}


class _Guard:
    """Outermost ASGI layer: token, body size, opt-in request log, last-resort 500.

    It runs before FastAPI touches the body, so an unauthenticated or oversized request
    costs us neither memory nor parsing. The body is read here with a running byte count
    (chunked uploads have no Content-Length to trust) and replayed to the app.
    """

    def __init__(self, app: Any, settings: ServerSettings):
        self.app = app
        self.settings = settings
        self._token = settings.token.encode("utf-8") if settings.token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = {"status": 0, "sent": False}

        async def send_tracked(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
            await send(message)

        try:
            await self._handle(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - the one place that must never let a request crash the worker
            # Type and code location only: exception messages can quote request text.
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
            logger.error("internal error %s%s on %s %s", type(exc).__name__, where, scope["method"], scope["path"])
            if not state["sent"]:
                await _error(500, "internal_error", "internal server error")(scope, receive, send_tracked)
        finally:
            if self.settings.log_requests:
                logger.info(
                    "%s %s %d %.1fms", scope["method"], scope["path"], state["status"], (time.perf_counter() - started) * 1000
                )

    async def _handle(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])  # later duplicates win; fine for the two we read
        if self._token is not None and scope["path"] not in OPEN_PATHS and not self._authorized(headers):
            await _error(
                401, "unauthorized", "missing or invalid bearer token (Authorization: Bearer <token>)",
                {"WWW-Authenticate": 'Bearer realm="groupscore"'},
            )(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                declared_n = int(declared)
            except ValueError:
                await _error(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
                return
            if declared_n > limit:
                await _error(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")(scope, receive, send)
                return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # client went away; nothing to answer
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await _error(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self._token is not None
        scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
        # compare_digest: the time taken must not reveal how much of the token matched.
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)


def _check_text(text: str, limit: int, where: str) -> None:
    if len(text) > limit:
        raise ApiError(413, "text_too_long", f"{where}: text has {len(text)} characters, the limit is {limit}")


def _check_count(n: int, limit: int) -> None:
    if n > limit:
        raise ApiError(413, "batch_too_large", f"{n} messages in one request, the limit is {limit}")


# --------------------------------------------------------------------------- app


def create_app(classifier: Classifier, settings: ServerSettings | None = None) -> FastAPI:
    """Build the service around an already loaded classifier (loaded once, shared by requests)."""
    settings = settings or ServerSettings()
    app = FastAPI(
        title="groupscore",
        version=__version__,
        description="Classify Chinese group-chat messages (ad / question / on_topic / off_topic) "
        "and score groups for effective activity and topic verticality.",
    )
    app.state.classifier = classifier
    app.state.settings = settings
    # Declared for the OpenAPI schema only; _Guard does the checking, before the body is read.
    auth = [Security(HTTPBearer(auto_error=False, description="Needed when the server has GROUPSCORE_TOKEN set."))]

    @lru_cache(maxsize=512)
    def topic_for(description: str | None) -> Topic | None:
        # Expanding a description is the same work for every message of a group: do it once.
        if description is None or not description.strip():
            return None
        return classifier.make_topic(description=description)

    def resolve(topic: str | None, group: str | None) -> str | None:
        if topic:
            return topic
        if group:
            return settings.topics.get(group)
        return None

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(GroupscoreError)
    async def _groupscore_error(_: Request, exc: GroupscoreError) -> Response:
        return _error(422, "invalid_input", str(exc).splitlines()[0] if str(exc) else "invalid input")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not even text (e.g. invalid UTF-8).
            return _error(400, "malformed_json", "request body is not valid UTF-8 JSON")
        code = _STATUS_CODES.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            pos = next((e["loc"][-1] for e in errors if e.get("type") == "json_invalid"), None)
            return _error(400, "malformed_json", f"request body is not valid JSON (at character {pos})")
        ctype = request.headers.get("content-type", "")
        if errors and tuple(errors[0].get("loc", ())) == ("body",) and "json" not in ctype.lower():
            return _error(415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json")
        # No "input" in what we return: it would echo chat text back (and into client logs).
        slim = [{"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": e.get("msg", "")} for e in errors]
        first = slim[0] if slim else {"loc": "body", "msg": "invalid"}
        more = f" (and {len(slim) - 1} more)" if len(slim) > 1 else ""
        return _error(422, "invalid_request", f"{first['loc']}: {first['msg']}{more}", errors=slim)

    # Plain ``def`` endpoints: classification is CPU-bound, FastAPI runs them in its threadpool
    # so the event loop keeps accepting connections and answering health checks.

    @app.get("/v1/health", response_model=HealthResponse, tags=["service"])
    def health() -> Response:
        """Liveness; open even when a token is configured."""
        return _json({"status": "ok", "version": __version__})

    @app.get("/v1/model", dependencies=auth, tags=["service"], responses=_ERRORS)
    def model_info() -> Response:
        """The loaded model: labels, backend, version, training summary and metrics."""
        info = dict(classifier.info())
        info.setdefault("labels", list(classifier.labels))
        return _json(info)

    @app.post("/v1/classify", response_model=PredictionOut, dependencies=auth, tags=["classify"], responses=_ERRORS)
    def classify(req: ClassifyRequest) -> Response:
        """Classify one message."""
        _check_text(req.text, settings.max_text_chars, "text")
        pred = classifier.predict(req.text, topic=topic_for(resolve(req.topic, req.group)))
        return _json(pred.to_dict())

    @app.post("/v1/classify/batch", response_model=BatchResponse, dependencies=auth, tags=["classify"], responses=_ERRORS)
    def classify_batch(req: BatchRequest) -> Response:
        """Classify many messages; predictions come back in request order."""
        _check_count(len(req.messages), settings.max_batch)
        by_topic: dict[str | None, list[int]] = {}
        for i, m in enumerate(req.messages):
            _check_text(m.text, settings.max_text_chars, f"messages[{i}]")
            key = resolve(m.topic, m.group) or resolve(req.topic, req.group)
            by_topic.setdefault(key, []).append(i)
        out: list[dict[str, Any] | None] = [None] * len(req.messages)
        # One model call per distinct topic keeps the bulk path vectorised.
        for key, idx in by_topic.items():
            preds = classifier.predict([req.messages[i].text for i in idx], topic=topic_for(key))
            for i, p in zip(idx, preds):
                out[i] = p.to_dict()
        return _json({"predictions": out})

    @app.post("/v1/score", dependencies=auth, tags=["score"], responses=_ERRORS)
    def score(req: ScoreRequest) -> Response:
        """Score one group's messages: the same per-group object as ``report.json``."""
        from .scoring import score_messages  # imported here so classify works without it

        _check_count(len(req.messages), settings.max_score_messages)
        messages = []
        for i, m in enumerate(req.messages):
            _check_text(m.text, settings.max_text_chars, f"messages[{i}]")
            messages.append(
                Message(group=req.group, sender=m.sender, sender_id=m.sender_id, time=m.time, text=m.text,
                        kind=m.kind, msg_id=m.msg_id, reply_to=m.reply_to)
            )
        topic = resolve(req.topic, req.group)
        extra = {} if req.relevance_threshold is None else {"relevance_threshold": req.relevance_threshold}
        if req.member_confidence is not None:
            extra["member_confidence"] = req.member_confidence
        result = score_messages(
            messages, classifier, topic=topic_for(topic), members=req.members, admins=tuple(req.admins),
            group=req.group, **extra,
        )
        return _json(result)

    # Inside Starlette's ServerErrorMiddleware but in front of routing: the guard sees every
    # request first and catches every unhandled error, so none reaches uvicorn's traceback log.
    app.add_middleware(_Guard, settings=settings)
    return app


def warm_up(classifier: Classifier) -> None:
    """One throwaway prediction, so lazy start-up work (e.g. jieba building its dictionary,
    about a second) happens before the port opens rather than in the first user's request."""
    classifier.predict(["预热一下：有人在吗？"], topic=None)
    classifier.predict_proba(["预热一下：有人在吗？"], topic=None)  # the batch path's tables (score)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker runs: model and settings from env.

    ``GROUPSCORE_MODEL`` names the model directory (the shipped default when unset).
    """
    settings = ServerSettings.from_env()
    classifier = load_model(os.environ.get("GROUPSCORE_MODEL") or None)
    warm_up(classifier)
    return create_app(classifier, settings)
