"""Workflows in Python: a builder producing exactly the definition the YAML format gives.

::

    import faena

    wf = faena.workflow("invoice-intake", inputs={"document_url": "string"})
    text = wf.step("text", "ocr", with_={"url": "{{ inputs.document_url }}"})
    total = wf.step("total", "extract_total", needs=[text], with_={"text": text.output("text")})
    wf.step("tell", "notify.webhook", needs=[total], when=total.expr("output.amount > 1000"))
    wf.apply()                      # PUT /v1/workflows/invoice-intake (FAENA_SERVER, FAENA_API_KEY)
    print(wf.to_yaml())             # or keep the YAML in your repository
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from faena.domain.workflows import WorkflowDef, parse_workflow


@dataclass(frozen=True, slots=True)
class StepRef:
    """A step of a :class:`Workflow`: pass it in ``needs``, read its output in templates."""

    id: str

    def output(self, path: str = "") -> str:
        """``"{{ steps.<id>.output.<path> }}"``: the whole value (native types) of the output."""
        return "{{ " + self.ref(path) + " }}"

    def ref(self, path: str = "") -> str:
        """``steps.<id>.output.<path>``, to use inside your own expression."""
        return f"steps.{self.id}.output" + (f".{path}" if path else "")

    def expr(self, expression: str) -> str:
        """``"{{ steps.<id>.<expression> }}"``, e.g. ``total.expr("output.amount > 1000")``."""
        return "{{ steps." + self.id + "." + expression + " }}"


@dataclass
class Workflow:
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)
    on_failure: str = "stop"
    schedule: str | Mapping[str, Any] | None = None
    webhook: bool | Mapping[str, Any] | None = None
    triggers: list[Mapping[str, Any]] = field(default_factory=list)
    description: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(
        self,
        id: str,
        kind: str,
        *,
        with_: Any = None,
        needs: Sequence[StepRef | str] = (),
        when: str | None = None,
        for_each: str | list[Any] | None = None,
        max_parallel: int | None = None,
        retries: int | None = None,
        timeout_s: float | None = None,
        labels: Mapping[str, str] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        if_skipped: str | None = None,
    ) -> StepRef:
        """Add a step (same fields as YAML; ``with_`` is ``with``); return its reference."""
        step: dict[str, Any] = {"id": id, "kind": kind}
        optional = {
            "with": with_,
            "needs": [n.id if isinstance(n, StepRef) else n for n in needs] or None,
            "when": when,
            "for_each": for_each,
            "max_parallel": max_parallel,
            "retries": retries,
            "timeout_s": timeout_s,
            "labels": dict(labels) if labels else None,
            "queue": queue,
            "priority": priority,
            "if_skipped": if_skipped,
        }
        step.update({k: v for k, v in optional.items() if v is not None})
        self.steps.append(step)
        return StepRef(id)

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name}
        if self.description:
            doc["description"] = self.description
        if self.inputs:
            doc["inputs"] = dict(self.inputs)
        doc["on_failure"] = self.on_failure
        if self.schedule is not None:
            doc["schedule"] = self.schedule
        if self.webhook is not None:
            doc["webhook"] = self.webhook
        if self.triggers:
            doc["triggers"] = [dict(t) for t in self.triggers]
        doc["steps"] = list(self.steps)
        return doc

    def definition(self) -> WorkflowDef:
        """The validated definition (kinds are checked by the server when applied)."""
        from faena.domain.cron import check_cron

        return parse_workflow(self.to_document(), check_cron=check_cron)

    def to_dict(self) -> dict[str, Any]:
        """The canonical definition, as the server stores it."""
        return self.definition().to_dict()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_document(), sort_keys=False, allow_unicode=True)

    def apply(self, server: str | None = None, api_key: str | None = None) -> dict[str, Any]:
        """``PUT /v1/workflows/{name}``; returns the server's answer (name, version...)."""
        from faena.client import Client
        from faena.client_models import decode

        self.definition()
        with Client(server, api_key) as client:
            response = client._http.put(f"/v1/workflows/{self.name}", json=self.to_document())
            result: dict[str, Any] = decode(response, client.server)
        return result


def workflow(
    name: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    on_failure: str = "stop",
    schedule: str | Mapping[str, Any] | None = None,
    webhook: bool | Mapping[str, Any] | None = None,
    triggers: Sequence[Mapping[str, Any]] = (),
    description: str | None = None,
) -> Workflow:
    """A new workflow builder; add steps with :meth:`Workflow.step`."""
    return Workflow(
        name=name,
        inputs=dict(inputs or {}),
        on_failure=on_failure,
        schedule=schedule,
        webhook=webhook,
        triggers=list(triggers),
        description=description,
    )
