"""Every Qianfan v1 model name reaches the endpoint Baidu's SDK sends it to, whatever its case.

The facts below are copied by hand from qianfan 0.4.12.3, qianfan/resources/llm/chat_completion.py
(`_ChatCompletionV1._local_models` and its alias tables), not imported: qianfan is not a dependency. Each request
goes through the client to the simulator over a real socket, and the path the simulator received is checked.
"""

from __future__ import annotations

import pytest

from ernie_widget.client import Ernie
from ernie_widget.client.providers.v1_endpoints import SDK_V1_ENDPOINTS, V1_ENDPOINTS
from ernie_widget.testing import ErnieSimulator

try:  # tests/ may or may not be a package
    from tests.client_support import client_args
except ImportError:
    from client_support import client_args  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(60)

V1_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"

#: (name as a user may type it, the SDK's endpoint) — from the SDK source, including the four examples where this
#: package used to send the request elsewhere (0701, Function, Speed, Lite-8K-0308)
SDK_FACTS = [
    ("ERNIE-3.5-8K-0701", "ernie-3.5-8k-0701"),
    ("ERNIE-Function-8K", "ernie-func-8k"),
    ("ERNIE-Speed", "ernie_speed"),
    ("ERNIE-Lite-8K-0308", "ernie-lite-8k"),
    ("ERNIE-4.0-8K-Preview-0518", "completions_adv_pro"),
    ("ERNIE-Lite-AppBuilder-8K-0614", "ai_apaas_lite"),
    ("ERNIE-Character-Fiction-8K", "ernie-char-fiction-8k"),
    ("BLOOMZ-7B", "bloomz_7b1"),
    ("Meta-Llama-3-70B", "llama_3_70b"),
    ("ERNIE-Bot-turbo-AI", "ai_apaas"),
    ("ERNIE-4.0-8K", "completions_pro"),
    ("ERNIE-Speed-8K", "ernie_speed"),
]


def _paths(sim: ErnieSimulator, models: list[str]) -> list[str]:
    """The endpoint each model's chat request reached on the simulator, in order."""
    with Ernie(**client_args(sim, "qianfan-v1", max_retries=0)) as client:
        for model in models:
            assert client.chat("hi", model=model).text
    paths = [r.path for r in sim.chat_requests]
    assert len(paths) == len(models) and all(p.startswith(V1_PREFIX) for p in paths), paths
    return [p[len(V1_PREFIX):] for p in paths]


def test_every_name_in_the_table_reaches_its_endpoint(ernie_simulator: ErnieSimulator) -> None:
    names = list(V1_ENDPOINTS)
    assert _paths(ernie_simulator, names) == [V1_ENDPOINTS[n] for n in names]
    # the table holds all 59 of the SDK's names that are plain identifiers (62 less three with a space)
    assert len(SDK_V1_ENDPOINTS) == 59


def test_names_the_sdk_knows_reach_the_sdks_endpoint(ernie_simulator: ErnieSimulator) -> None:
    models = [name for name, _ in SDK_FACTS]
    assert _paths(ernie_simulator, models) == [endpoint for _, endpoint in SDK_FACTS]


def test_case_does_not_matter_for_a_known_name(ernie_simulator: ErnieSimulator) -> None:
    spellings = ["ERNIE-3.5-8K-0701", "ernie-3.5-8k-0701", "Ernie-3.5-8k-0701", "ERNIE-FUNCTION-8K",
                 "ernie-function-8k", "ernie-speed", "ERNIE-SPEED-8K", "erNIE-bOT"]
    assert _paths(ernie_simulator, spellings) == ["ernie-3.5-8k-0701"] * 3 + ["ernie-func-8k"] * 2 \
        + ["ernie_speed"] * 2 + ["completions"]


def test_an_unknown_plain_name_is_lower_cased(ernie_simulator: ErnieSimulator) -> None:
    # every v1 endpoint suffix is lower case: an unknown name reaches the same endpoint however it is spelled
    assert _paths(ernie_simulator, ["My_Custom-Endpoint.v2", "ERNIE-X2-Preview"]) == [
        "my_custom-endpoint.v2", "ernie-x2-preview"]
