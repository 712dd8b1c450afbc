"""What the SDK's workflow methods hand back (``Run``, ``StepRun``, ``RunPage``,
``AppliedWorkflow``) and how both clients turn a definition into a ``PUT /v1/workflows/{name}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from faena.client_models import TERMINAL_STATES, WaitTimeout, parse_time
from faena.domain.errors import ValidationError

YAML_HEADERS = {"Content-Type": "application/yaml"}
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class StepRun:
    """One step of a run: its state, its jobs' ids and, once finished, its output."""

    id: str
    state: str
    attempts: int = 0
    tries: int = 0
    jobs: list[str | None] = field(default_factory=list)
    items: int | None = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRun:
        return cls(
            id=data["id"],
            state=data["state"],
            attempts=data.get("attempts", 0),
            tries=data.get("tries", 0),
            jobs=list(data.get("jobs") or []),
            items=data.get("items"),
            output=data.get("output"),
            error=data.get("error"),
            started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """A workflow run as the server last reported it."""

    id: str
    workflow: str
    version: int
    state: str
    tenant: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    trigger: str | None = None
    error: str | None = None
    steps: list[StepRun] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def step(self, step_id: str) -> StepRun:
        """The step named ``step_id`` (``KeyError`` if the workflow has none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def outputs(self) -> dict[str, Any]:
        """Each finished step's output, by step id."""
        return {s.id: s.output for s in self.steps if s.state == "succeeded"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            version=data["version"],
            state=data["state"],
            tenant=data.get("tenant", ""),
            inputs=dict(data.get("inputs") or {}),
            trigger=data.get("trigger"),
            error=data.get("error"),
            steps=[StepRun.from_json(s) for s in data.get("steps") or []],
            created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")),
            finished_at=parse_time(data.get("finished_at")),
        )


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AppliedWorkflow:
    """The answer to an apply: the stored ``version``, and ``created`` False when the
    definition was identical to the latest one."""

    name: str
    version: int
    created: bool
    webhook_path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppliedWorkflow:
        return cls(
            name=data["name"],
            version=data["version"],
            created=bool(data.get("created", True)),
            webhook_path=data.get("webhook_path"),
            raw=dict(data),
        )


class RunWaitTimeout(WaitTimeout):
    """``wait_run``/``run_workflow(wait=True)`` ran out of time; ``run`` is the last state."""

    def __init__(self, message: str, run: Run) -> None:
        super().__init__(message)
        self.run = run


def run_timeout_error(run: Run, timeout: float | None) -> RunWaitTimeout:
    shown = "0" if not timeout else f"{timeout:g}"
    return RunWaitTimeout(f"run {run.id} is still {run.state} after {shown}s", run)


def apply_request(
    definition: str | Path | Mapping[str, Any] | Any, name: str | None
) -> tuple[str, bytes, dict[str, str]]:
    """The path, body and headers of the PUT for ``definition``: YAML text, a file path, a
    mapping (JSON) or a :class:`faena.Workflow`. The name comes from ``name`` or the
    definition's own ``name``; the server validates everything else."""
    import orjson

    from faena.workflow_builder import Workflow

    if isinstance(definition, Workflow):
        definition = definition.to_document()
    if isinstance(definition, Path):
        definition = definition.read_text("utf-8")
    if isinstance(definition, str):
        body, headers = definition.encode(), YAML_HEADERS
        found = _yaml_name(definition)
    elif isinstance(definition, Mapping):
        body, headers = orjson.dumps(dict(definition)), JSON_HEADERS
        found = definition.get("name")
    else:
        raise TypeError("definition: YAML text, a Path, a mapping or a faena.Workflow")
    chosen = name or found
    if not isinstance(chosen, str) or not chosen:
        raise ValidationError("the workflow has no name: give it `name:` or pass name=")
    return f"/v1/workflows/{chosen}", body, headers


def _yaml_name(text: str) -> Any:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # the server answers with the precise line
    return document.get("name") if isinstance(document, dict) else None


def run_body(
    inputs: Mapping[str, Any] | None, version: int | None, idempotency_key: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": dict(inputs or {})}
    if version is not None:
        body["version"] = version
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return body
