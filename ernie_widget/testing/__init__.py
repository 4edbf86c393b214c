"""An ERNIE protocol simulator for tests, demos and benchmarks — no network, no API key.

`ErnieSimulator` is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port, its own thread) that speaks
Qianfan v2, Qianfan v1 (with OAuth), AI Studio and OpenAI-compatible (FastDeploy / vLLM / llama.cpp)
chat completions, streaming and not, byte-faithful to the real services. Script what it answers with
`Answer`, and how it fails with `Fault`::

    from ernie_widget.testing import Answer, ErnieSimulator, Fault

    with ErnieSimulator() as sim:
        sim.set_answer(text="你好，世界", reasoning="Let me think.", chunk_size=2, delay=0.01)
        sim.push(Fault.status(429, retry_after=1), Fault.cut(after_chunks=2))  # the next two requests
        os.environ.update(sim.env("qianfan"))   # QIANFAN_API_KEY, QIANFAN_BASE_URL, ERNIE_PROVIDER
        ...                                      # run your code against sim.base_url("qianfan")
        assert sim.chat_requests[-1].json["messages"][-1]["content"] == "hi"

Without scripts it answers deterministically ``"你好！You said: <last user message>"``.

In pytest, load the fixture plugin (`conftest.py`)::

    pytest_plugins = ["ernie_widget.testing.fixtures"]

    def test_my_bot(ernie_simulator):
        ernie_simulator.push(Answer(text="ok"))
        ...

From a shell: ``python -m ernie_widget.testing --port 8866`` prints ``ERNIE_SIMULATOR_URL=…`` and serves
until interrupted.
"""

from ._process import simulator_process
from ._records import RecordedRequest
from ._scripts import Answer, Fault
from ._server import CHAT_SURFACES, ErnieSimulator, echo_answer

__all__ = ["CHAT_SURFACES", "Answer", "ErnieSimulator", "Fault", "RecordedRequest", "echo_answer", "simulator_process"]
