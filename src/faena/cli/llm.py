"""``faena llm providers|policies|budgets|usage``: the tenant's LLM configuration and spending,
through the API (scope ``admin`` to change, ``jobs:read`` to read)."""

from __future__ import annotations

from typing import Any

import click

from faena.cli.context import CliContext, json_option, pass_cli
from faena.cli.output import print_json, print_table
from faena.domain.errors import ValidationError


@click.group()
def llm() -> None:
    """LLM providers, routing policies, budgets and usage."""


@llm.group()
def providers() -> None:
    """Provider endpoints (OpenAI-compatible or Anthropic) with their models and prices."""


def _price(spec: str) -> tuple[str, dict[str, float]]:
    """``NAME`` or ``NAME=IN/OUT`` (USD per million tokens in and out)."""
    name, sep, prices = spec.partition("=")
    if not sep:
        return name, {}
    inp, slash, out = prices.partition("/")
    try:
        return name, {"input_per_mtok": float(inp), "output_per_mtok": float(out if slash else 0)}
    except ValueError:
        raise ValidationError(f"--model {spec!r}: expected NAME or NAME=IN/OUT prices") from None


@providers.command("set")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["openai", "anthropic"]),
    required=True,
    help="the wire protocol: openai (every Chat Completions server) or anthropic",
)
@click.option(
    "--base-url",
    required=True,
    help="e.g. https://api.openai.com/v1, https://api.anthropic.com, http://127.0.0.1:11434/v1",
)
@click.option("--api-key-secret", metavar="SECRET", help="the secret holding the API key")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[=IN/OUT]",
    help="a model and its USD price per million tokens in/out (repeatable)",
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.05, 3600), help="seconds (60)")
@click.option("--max-retries", type=click.IntRange(0, 10), help="retries on this provider (2)")
@json_option
@pass_cli
def set_provider(
    cli: CliContext, /, name: str, *, kind: str, base_url: str, api_key_secret: str | None,
    models: tuple[str, ...], timeout_s: float | None, max_retries: int | None,
) -> None:  # fmt: skip
    """Add or replace provider NAME."""
    body: dict[str, Any] = {"kind": kind, "base_url": base_url, "models": dict(map(_price, models))}
    if api_key_secret:
        body["api_key_secret"] = api_key_secret
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if max_retries is not None:
        body["max_retries"] = max_retries
    found = cli.client().llm("PUT", f"providers/{name}", body)
    if cli.json:
        print_json(found)
    else:
        click.echo(f"provider {name}: {kind} at {base_url}, {len(found['models'])} model(s)")


@providers.command("list")
@json_option
@pass_cli
def list_providers(cli: CliContext) -> None:
    """List the tenant's providers."""
    found = cli.client().llm("GET", "providers")["providers"]
    if cli.json:
        print_json(found)
        return
    print_table(
        ["NAME", "KIND", "BASE URL", "KEY SECRET", "MODELS"],
        [
            [p["name"], p["kind"], p["base_url"], p["api_key_secret"] or "-",
             ", ".join(p["models"]) or "-"]
            for p in found
        ],
    )  # fmt: skip


@providers.command("rm")
@click.argument("name")
@pass_cli
def remove_provider(cli: CliContext, /, name: str) -> None:
    """Remove provider NAME."""
    cli.client().llm("DELETE", f"providers/{name}")
    click.echo(f"removed provider {name}")


@llm.group()
def policies() -> None:
    """Routing policies: tiers from cheap to strong, each with fallbacks."""


def _tier(spec: str) -> dict[str, Any]:
    """``PROVIDER/MODEL[,FALLBACK...][@MAX_PROMPT_CHARS]``."""
    models, _, limit = spec.partition("@")
    model, *fallbacks = [m.strip() for m in models.split(",") if m.strip()]
    tier: dict[str, Any] = {"model": model, "fallbacks": fallbacks}
    if limit:
        if not limit.isdigit():
            raise ValidationError(f"--tier {spec!r}: the size after @ must be a number of chars")
        tier["max_prompt_chars"] = int(limit)
    return tier


@policies.command("set")
@click.argument("name")
@click.option(
    "--tier",
    "tiers",
    multiple=True,
    required=True,
    metavar="P/MODEL[,FALLBACK...][@MAX_CHARS]",
    help="a tier, cheapest first (repeatable); @N: only prompts up to N characters",
)
@json_option
@pass_cli
def set_policy(cli: CliContext, /, name: str, tiers: tuple[str, ...]) -> None:  # fmt: skip
    """Add or replace routing policy NAME (``default`` is used when a step names none)."""
    found = cli.client().llm("PUT", f"policies/{name}", {"tiers": [_tier(t) for t in tiers]})
    if cli.json:
        print_json(found)
    else:
        click.echo(f"policy {name}: " + " -> ".join(t["model"] for t in found["tiers"]))


@policies.command("list")
@json_option
@pass_cli
def list_policies(cli: CliContext) -> None:
    """List the tenant's routing policies."""
    found = cli.client().llm("GET", "policies")["policies"]
    if cli.json:
        print_json(found)
        return
    rows = [
        [p["name"], " -> ".join(
            t["model"] + (f" (or {', '.join(t['fallbacks'])})" if t["fallbacks"] else "")
            for t in p["tiers"])]
        for p in found
    ]  # fmt: skip
    print_table(["NAME", "TIERS"], rows)


@policies.command("rm")
@click.argument("name")
@pass_cli
def remove_policy(cli: CliContext, /, name: str) -> None:
    """Remove routing policy NAME."""
    cli.client().llm("DELETE", f"policies/{name}")
    click.echo(f"removed policy {name}")


@llm.group()
def budgets() -> None:
    """Spending limits per tenant and per workflow."""


@budgets.command("set")
@click.option("--workflow", help="a workflow's budget (default: the tenant's)")
@click.option("--limit", "limit_usd", type=click.FloatRange(0), required=True, help="USD")
@click.option("--period", type=click.Choice(["day", "month", "total"]), default="month")
@click.option(
    "--downgrade-to",
    metavar="P/MODEL",
    help="when spent, route calls to this model instead of refusing them",
)
@json_option
@pass_cli
def set_budget(
    cli: CliContext, /, workflow: str | None, limit_usd: float, period: str,
    downgrade_to: str | None,
) -> None:  # fmt: skip
    """Set the tenant's (or a workflow's) budget; what was spent this period is kept."""
    budget: dict[str, Any] = {"limit_usd": limit_usd, "period": period}
    budget.update({"scope": "workflow", "name": workflow} if workflow else {"scope": "tenant"})
    if downgrade_to:
        budget.update(on_exhausted="downgrade", downgrade_model=downgrade_to)
    found = cli.client().llm("PUT", "budgets", {"budgets": [budget]})["budgets"][0]
    if cli.json:
        print_json(found)
    else:
        click.echo(_budget_line(found))


def _budget_line(b: dict[str, Any]) -> str:
    who = "tenant" if b["scope"] == "tenant" else f"workflow {b['name']}"
    action = f"then {b['downgrade_model']}" if b["on_exhausted"] == "downgrade" else "then refuse"
    return f"{who}: ${b['spent_usd']:.4f} of ${b['limit_usd']:.2f} per {b['period']}, {action}"


@budgets.command("list")
@json_option
@pass_cli
def list_budgets(cli: CliContext) -> None:
    """Budgets and what is spent in the current period."""
    found = cli.client().llm("GET", "budgets")["budgets"]
    if cli.json:
        print_json(found)
        return
    for b in found:
        click.echo(_budget_line(b))


@llm.command("usage")
@click.option("--since", help="epoch seconds or an ISO 8601 time (default: all)")
@click.option(
    "--group-by",
    type=click.Choice(["model", "provider", "job", "workflow", "day"]),
    default="model",
)
@json_option
@pass_cli
def usage(cli: CliContext, /, since: str | None, group_by: str) -> None:  # fmt: skip
    """Calls, tokens and cost of the tenant's LLM calls."""
    found = cli.client().llm("GET", "usage", since=since, group_by=group_by)
    if cli.json:
        print_json(found)
        return
    rows = [
        [g["key"], str(g["calls"]), str(g["tokens_in"]), str(g["tokens_out"]),
         f"{g['cost_usd']:.6f}"]
        for g in [*found["groups"], {"key": "TOTAL", **found["total"]}]
    ]  # fmt: skip
    print_table([group_by.upper(), "CALLS", "TOKENS IN", "TOKENS OUT", "COST USD"], rows)
