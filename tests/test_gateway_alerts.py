"""The alert rules in docs/gateway-alerts.md name only metrics the gateway exports and error codes it sends."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml

from ernie_widget.gateway.testing import gateway_for
from ernie_widget.testing import ErnieSimulator

DOC = Path(__file__).resolve().parents[1] / "docs" / "gateway-alerts.md"
GATEWAY = Path(__file__).resolve().parents[1] / "ernie_widget" / "gateway"


def _rules() -> list[dict]:  # type: ignore[type-arg]
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "no yaml block in docs/gateway-alerts.md"
    groups = yaml.safe_load(block.group(1))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_rule_names_exported_metrics_and_real_error_codes(ernie_simulator: ErnieSimulator) -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {"ErnieGatewayErrorRateHigh", "ErnieGatewayTimeToFirstTokenSlow",
                                           "ErnieGatewayBudgetExhaustion", "ErnieGatewayUpstreamFailing"}
    with gateway_for(ernie_simulator) as gw:
        httpx.post(gw.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                           "stream": True}, timeout=20)
        httpx.post(gw.url + "/v1/chat/completions", json={"messages": "bad"}, timeout=20)
        exported = httpx.get(gw.url + "/metrics", timeout=20).text
    families = set(re.findall(r"^# TYPE (\w+) ", exported, re.M))
    samples = set(re.findall(r"^(\w+)[{ ]", exported, re.M))
    sources = "\n".join(p.read_text(encoding="utf-8") for p in GATEWAY.glob("*.py"))
    for rule in rules:
        for metric in re.findall(r"\bernie_gateway_\w+", rule["expr"]):
            base = re.sub(r"_(bucket|count|sum|total)$", "", metric)
            assert metric in samples or base in families, f"{rule['alert']}: {metric} is not exported"
        for codes in re.findall(r'code(?:=~|!~|=)"([^"]+)"', rule["expr"]):
            for code in codes.split("|"):
                assert f'"{code}"' in sources, f"{rule['alert']}: no error code {code!r} in the gateway"
