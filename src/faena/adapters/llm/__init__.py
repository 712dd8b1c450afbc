"""LLM provider adapters: each speaks one provider wire protocol over httpx."""

from __future__ import annotations

from faena.adapters.llm.anthropic import AnthropicProvider
from faena.adapters.llm.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "OpenAIProvider"]
