"""Eden AI v2 async speech-to-text shapes (``/v2/audio/speech_to_text_async``).

The local engine is one provider, ``whisper``; ``whisper/<model>`` (or ``settings`` =
``{"whisper": "<model>"}``) picks a model. One launch is one job, so the providers asked for
must all name the same model; each gets its own key in ``results``. Diarization entries are
the words with their timings, all from speaker 1 (Whisper does not tell speakers apart).
Multipart forms send strings: booleans, integers and JSON objects are coerced here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whispercli.server.vendors import DEFAULT_MODEL, jsonbody

PROVIDER = "whisper"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_IGNORED_FLAGS = ("convert_to_wav", "show_base_64")
FIELDS = frozenset(
    {
        "providers",
        "file",
        "file_url",
        "language",
        "speakers",
        "profanity_filter",
        "custom_vocabulary",
        "convert_to_wav",
        "settings",
        "provider_params",
        "fallback_providers",
        "show_original_response",
        "show_base_64",
        "webhook_receiver",
        "users_webhook_parameters",
        "send_webhook_data",
    }
)
STATUS = {
    "accepted": "processing",
    "pending": "processing",
    "processing": "processing",
    "success": "finished",
    "failed": "failed",
    "cancelled": "failed",
}
FINAL_OK, FINAL_FAIL = "sucess", "fail"  # sic: the spelling of Eden's v2 schema


def public_id(job_id: str) -> str:
    """Our job id (32 hex digits) as Eden's ``public_id`` (a UUID)."""
    return str(uuid.UUID(hex=job_id))


def job_id_of(public: str) -> str | None:
    """The job id of a ``public_id`` (with or without dashes), None if it is not one."""
    try:
        return uuid.UUID(public.strip()).hex
    except ValueError:
        return None


class EdenError(Exception):
    """An error answered in Eden's shape: ``status`` and ``body``."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(json.dumps(body))
        self.status, self.body, self.headers = status, body, dict(headers or {})


def invalid(param: str, message: str) -> EdenError:
    """Eden's 400: ``{"error": {"type", "message": {param: [message]}}}``."""
    return EdenError(400, {"error": {"type": "Invalid request", "message": {param: [message]}}})


def simple_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> EdenError:
    """Eden's 403/500 shape: ``{"error": {"type", "message"}}`` (404 is ``{"details"}``)."""
    if status == 404:
        return EdenError(404, {"details": "Not Found"})
    return EdenError(status, {"error": {"type": kind, "message": message}}, headers)


def providers_of(meta: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The providers a launch asked for (kept in the job's metadata); ``whisper`` for a job
    that another protocol submitted."""
    providers = (meta or {}).get("providers")
    return tuple(providers) if providers else (PROVIDER,)


@dataclass(frozen=True)
class Launch:
    providers: tuple[str, ...]
    """The names asked for, each a key of the results (``whisper``, ``whisper/small``)."""
    model: str
    whisper_input: dict[str, Any]
    """Our Whisper params, still to be validated by the job service."""
    file_url: str | None = None
    webhook_receiver: str | None = None
    users_webhook_parameters: dict[str, Any] | None = None
    send_webhook_data: bool = True
    show_original_response: bool = False


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise invalid(name, "Must be a valid boolean.")


def _int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise invalid(name, "A valid integer is required.")


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(name, "Not a valid string.")
    return value


def _object(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # multipart: a JSON text
        try:
            value = jsonbody.loads(value) if value.strip() else {}
        except jsonbody.JsonBodyError:
            raise invalid(name, "Value must be valid JSON.") from None
    if not isinstance(value, dict):
        raise invalid(name, "Must be a JSON object.")
    return value


def model_of(provider: str) -> str:
    """``whisper`` -> the default model, ``whisper/small`` -> ``small``; else an Eden 400."""
    name, _, model = provider.strip().partition("/")
    if name != PROVIDER or (model == "" and "/" in provider):
        raise invalid(
            "providers",
            f"Invalid provider: {provider.strip()!r}. This server has one provider, "
            f"'{PROVIDER}' ('{PROVIDER}/<model>' picks a model).",
        )
    return model or DEFAULT_MODEL


def _providers(name: str, value: Any) -> list[str]:
    names = [p.strip() for p in _str(name, value).split(",") if p.strip()]
    if not names:
        raise invalid(name, "This field may not be blank.")
    return names


def parse_launch(fields: Mapping[str, Any], *, has_file: bool) -> Launch:
    """Check and coerce a launch (a JSON body or the form fields of a multipart one)."""
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise invalid(unknown[0], f"Unknown field {unknown[0]!r}.")
    if "providers" not in fields:
        raise invalid("providers", "This field is required.")
    providers = _providers("providers", fields["providers"])
    settings = _object("settings", fields.get("settings") or {})
    models = {p: model_of(p) for p in providers}
    for provider, model in settings.items():
        if provider not in models:
            raise invalid("settings", f"{provider!r} is not one of the providers asked for.")
        models[provider] = _str("settings", model)
    if len(set(models.values())) > 1:
        raise invalid(
            "providers",
            "This server runs one model per job: launch one job per model "
            f"(asked: {', '.join(sorted(set(models.values())))}).",
        )
    for fallback in _providers("fallback_providers", fields.get("fallback_providers") or "-"):
        if fallback != "-":
            model_of(fallback)

    file_url = fields.get("file_url")
    if file_url is not None:
        file_url = _str("file_url", file_url).strip() or None
    if has_file == (file_url is not None):
        raise invalid("file", "Send exactly one of 'file' (multipart upload) or 'file_url'.")

    params: dict[str, Any] = {"word_timestamps": True}
    language = fields.get("language")
    if language not in (None, ""):
        params["language"] = _str("language", language).split("-", 1)[0].lower()
    if "speakers" in fields and _int("speakers", fields["speakers"]) < 1:
        raise invalid("speakers", "Ensure this value is greater than or equal to 1.")
    if _bool("profanity_filter", fields.get("profanity_filter", False)):
        raise invalid("profanity_filter", f"Not supported by provider '{PROVIDER}'.")
    for flag in _IGNORED_FLAGS:
        _bool(flag, fields.get(flag, False))
    vocabulary = fields.get("custom_vocabulary")
    if vocabulary not in (None, ""):
        params["initial_prompt"] = _str("custom_vocabulary", vocabulary)
    provider_params = _object("provider_params", fields.get("provider_params") or {})
    for provider, given in provider_params.items():
        if provider not in models:
            raise invalid("provider_params", f"{provider!r} is not one of the providers asked for.")
        params.update(_object("provider_params", given))

    receiver = fields.get("webhook_receiver")
    users = fields.get("users_webhook_parameters")
    return Launch(
        providers=tuple(providers),
        model=next(iter(models.values())),
        whisper_input=params,
        file_url=file_url,
        webhook_receiver=(_str("webhook_receiver", receiver).strip() or None) if receiver else None,
        users_webhook_parameters=None
        if users in (None, "")
        else _object("users_webhook_parameters", users),
        send_webhook_data=_bool("send_webhook_data", fields.get("send_webhook_data", True)),
        show_original_response=_bool(
            "show_original_response", fields.get("show_original_response", False)
        ),
    )


def _seconds(value: Any) -> str:
    return f"{float(value):.3f}".rstrip("0").rstrip(".") if value is not None else "0"


def diarization(result: Mapping[str, Any]) -> dict[str, Any]:
    """Word entries (segment-level when a segment has no words), all from speaker 1."""
    entries = []
    for segment in result.get("segments") or []:
        words = segment.get("words") or [
            {
                "word": segment.get("text", ""),
                "start": segment.get("start"),
                "end": segment.get("end"),
                "probability": None,
            }
        ]
        for word in words:
            text = str(word.get("word", "")).strip()
            if not text:
                continue
            probability = word.get("probability")
            entries.append(
                {
                    "segment": text,
                    "start_time": _seconds(word.get("start")),
                    "end_time": _seconds(word.get("end")),
                    "speaker": 1,
                    "confidence": None if probability is None else round(float(probability), 4),
                }
            )
    return {"total_speakers": 1 if entries else 0, "entries": entries, "error_message": None}


def provider_result(
    public_id: str,
    result: Mapping[str, Any] | None,
    error: str | None,
    *,
    original: bool,
) -> dict[str, Any]:
    if result is None:
        return {
            "text": "",
            "diarization": {"total_speakers": 0, "entries": [], "error_message": error},
            "id": public_id,
            "final_status": FINAL_FAIL,
            "error": {"type": "ProviderError", "message": error or "the job did not finish"},
        }
    body: dict[str, Any] = {
        "text": str(result.get("text", "")).strip(),
        "diarization": diarization(result),
        "id": public_id,
        "final_status": FINAL_OK,
        "error": None,
    }
    if original:
        body["original_response"] = dict(result)
    return body


def job_body(
    public_id: str,
    status: str,
    providers: tuple[str, ...],
    result: Mapping[str, Any] | None,
    error: str | None,
    *,
    original: bool = False,
) -> dict[str, Any]:
    """The get-job body: ``{public_id, status, error, results}`` (results once it ended)."""
    eden_status = STATUS[status]
    results: dict[str, Any] = {}
    if eden_status != "processing":
        if status == "cancelled" and error is None:
            error = "the job was cancelled"
        one = provider_result(public_id, result, error, original=original)
        results = {name: one for name in providers}
    top_error = (
        {"type": "ProviderError", "message": error or "the job failed"}
        if eden_status == "failed"
        else None
    )
    return {"public_id": public_id, "status": eden_status, "error": top_error, "results": results}


def webhook_body(
    job: Mapping[str, Any], users_parameters: Mapping[str, Any] | None, send_data: bool
) -> dict[str, Any]:
    """What ``webhook_receiver`` gets: the get-job body (without results if not
    ``send_webhook_data``) and ``users_webhook_parameters`` echoed."""
    body = dict(job)
    if not send_data:
        body.pop("results", None)
    if users_parameters is not None:
        body["users_webhook_parameters"] = dict(users_parameters)
    return body


def list_entry(
    public_id: str, providers: tuple[str, ...], status: str, created_at: str | None
) -> dict[str, Any]:
    """One row of ``{"jobs": [...]}``."""
    ok = len(providers) if status == "success" else 0
    return {
        "providers": ",".join(providers),
        "nb": len(providers),
        "nb_ok": ok,
        "public_id": public_id,
        "state": STATUS[status],
        "created_at": created_at,
    }
