"""Which workflow a message starts: the watch's rules first; when none matches and the watch
has ``classify: {llm: ...}``, the tenant's LLM picks one of its labels; otherwise (or when the
LLM says no label fits, or refuses) the watch's default workflow, or none (skipped).

What decided is returned as the message's *classification*, recorded on its row and given to
the run (``message.classification``). The LLM call is made under the message's run key
(``mail:<watch>:<uidvalidity>:<uid>``) as its job id, so a message read again after a crash
gets the recorded answer back (replayed: same label, paid once). A refusal (budget spent,
guardrail, no provider configured, an answer that is not a label) falls back to the default;
no provider answering raises, and the watch retries the batch later with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog

from faena.domain.llm import ChatRequest, ChatResult, LlmRefused
from faena.domain.mail import MailWatch, run_key
from faena.domain.mail_messages import ParsedMessage

log = structlog.get_logger("faena.mail")


class ChatService(Protocol):
    """The LLM service's call (:class:`faena.services.llm.LlmService`)."""

    async def chat(
        self, tenant: str, request: ChatRequest, *, job_id: str | None = None
    ) -> ChatResult: ...


class MessageRouter:
    """Rules, then the LLM classifier, then the default. ``llm`` returns the LLM service
    when it is needed (None: this server has none)."""

    def __init__(self, llm: Callable[[], ChatService | None] | None = None) -> None:
        self._llm = llm

    async def route(
        self, watch: MailWatch, uidvalidity: int, uid: int, message: ParsedMessage
    ) -> tuple[str | None, dict[str, Any]]:
        """(the workflow to start or None, the classification)."""
        values = message.rule_values()
        index = watch.rule_for(values)
        if index is not None:
            workflow = watch.rules[index].workflow
            return workflow, {"by": "rule", "rule": index, "workflow": workflow}
        if watch.classify is None:
            return watch.workflow, {"by": "default", "workflow": watch.workflow}
        service = self._llm() if self._llm is not None else None
        if service is None:
            return watch.workflow, {
                "by": "default",
                "workflow": watch.workflow,
                "llm_error": "this server has no LLM service",
            }
        request = watch.classify.request(
            {**values, "attachments": [a.filename for a in message.attachments]}
        )
        try:
            result = await service.chat(
                watch.tenant, request, job_id=run_key(watch.id, uidvalidity, uid)
            )
        except LlmRefused as e:
            log.warning("mail classification refused", watch=watch.name, uid=uid, reason=e.message)
            return watch.workflow, {
                "by": "default",
                "workflow": watch.workflow,
                "llm_error": e.message[:500],
            }
        label, picked = watch.classify.workflow_for(result.output)
        chosen = picked if picked is not None else watch.workflow
        return chosen, {
            "by": "llm",
            "label": label,
            "workflow": chosen,
            "model": result.model,
            "provider": result.provider,
            "cost_usd": result.cost,
            "replayed": result.replayed,
            "cached": result.cached,
        }
