"""`client.map` on a Dask cluster: a real `distributed.LocalCluster` (2 worker processes on 127.0.0.1) against
the protocol simulator. One cluster for the module (it starts in ~2 s); every test clears the simulator."""

from __future__ import annotations

import asyncio
import io
import os
import pickle
import signal
import uuid

import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
db = pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from ernie_widget.batch.cluster import ClusterSpec, forget_job, job_progress, run_partition  # noqa: E402
from ernie_widget.client import AsyncErnie, Ernie  # noqa: E402
from ernie_widget.testing import ErnieSimulator, Fault, echo_answer  # noqa: E402

pytestmark = pytest.mark.timeout(120)

KEY = "bce-v3/ALTAK-clustertest/worker-only-secret"


@pytest.fixture(scope="module")
def sim():  # type: ignore[no-untyped-def]
    with ErnieSimulator() as s:
        yield s


@pytest.fixture(scope="module")
def dask_client(sim: ErnieSimulator):  # type: ignore[no-untyped-def]
    # the key reaches the workers only through their environment, never through the graph
    with (distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                   dashboard_address=None,
                                   env=sim.env("qianfan", api_key=KEY) | {"ERNIE_API_KEY": KEY}) as cluster,
          distributed.Client(cluster) as client):
        yield client


@pytest.fixture
def client(sim: ErnieSimulator, dask_client):  # type: ignore[no-untyped-def]
    sim.clear()
    sim.latency = 0.0
    with Ernie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan")) as c:
        yield c


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values only: dask and pandas pick different string dtypes for the same text."""
    out = frame.astype(object)
    out.index = out.index.astype(object)
    return out.where(out.notna(), None)


def cities(n: int) -> pd.DataFrame:
    return pd.DataFrame({"city": [f"城市{i}" for i in range(n)], "n": range(n)},
                        index=pd.Index([f"r{i}" for i in range(n)], name="row"))


# -- the map on a cluster -----------------------------------------------------------------------------------------


def test_a_dask_dataframe_gives_the_pandas_paths_rows_in_order(client, sim):
    df = cities(30)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    template = "把 {city} ×{n} 翻译成英文，{tone}"

    out = client.map(template, ddf, concurrency=3, namespace={"tone": "简短"}, progress=False)
    assert isinstance(out, dd.DataFrame)
    assert sim.chat_requests == []  # lazy until computed
    assert list(out.columns) == ["city", "n", "ernie_text", "ernie_error", "ernie_tokens"]

    got = out.compute()
    want = client.map(template, df, concurrency=3, namespace={"tone": "简短"}, progress=False)
    assert list(got.index) == list(df.index)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(plain(got), plain(want))
    assert got["ernie_text"].tolist() == [echo_answer(f"把 城市{i} ×{i} 翻译成英文，简短") for i in range(30)]
    assert str(got["ernie_tokens"].dtype) == "Int64"
    assert len(sim.chat_requests) == 60  # 30 from the workers, 30 from the pandas run


def test_schema_columns_match_the_pandas_path(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "score": {"type": "integer"}},
              "required": ["city", "score"]}
    df = cities(6)
    got = client.map("{city}", dd.from_pandas(df, npartitions=2, sort=False), schema=schema, progress=False).compute()
    want = client.map("{city}", df, schema=schema, progress=False)
    assert list(got.columns) == list(want.columns) == [
        "city", "n", "ernie_text", "ernie_error", "ernie_tokens", "ernie_city", "ernie_score"]
    pd.testing.assert_frame_equal(plain(got), plain(want))


def test_a_bag_of_prompts_gives_a_frame_of_answers(client):
    prompts = [f"问题 {i}" for i in range(7)]
    got = client.map(db.from_sequence(prompts, npartitions=3), progress=False).compute()
    assert got["prompt"].tolist() == prompts
    assert got["ernie_text"].tolist() == [echo_answer(p) for p in prompts]
    assert got["ernie_error"].isna().all()


def test_the_workers_send_the_key_from_their_environment(client, sim):
    client.map("{city}", dd.from_pandas(cities(4), npartitions=2, sort=False), progress=False).compute()
    assert {r.headers["authorization"] for r in sim.chat_requests} == {f"Bearer {KEY}"}


def test_gateway_sends_to_its_url_with_the_per_user_key_of_the_worker_environment(client, sim):
    sim.openai_api_key = KEY  # the gateway stand-in: /v1 wants the user's key
    try:
        out = client.map("{city}", dd.from_pandas(cities(4), npartitions=2, sort=False),
                         gateway=sim.base_url("openai"), progress=False).compute()
    finally:
        sim.openai_api_key = None
    assert out["ernie_error"].isna().all()
    assert {r.surface for r in sim.chat_requests} == {"openai"}
    assert {r.headers["authorization"] for r in sim.chat_requests} == {f"Bearer {KEY}"}


def test_the_async_client_returns_the_same_lazy_frame(sim, dask_client):
    sim.clear()

    async def lazy() -> object:
        async with AsyncErnie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan")) as aclient:
            return await aclient.map("{city}", dd.from_pandas(cities(3), npartitions=1, sort=False))

    out = asyncio.run(lazy())
    assert isinstance(out, dd.DataFrame) and sim.chat_requests == []
    assert out.compute()["ernie_text"].tolist() == [echo_answer(f"城市{i}") for i in range(3)]

def test_the_key_is_nowhere_in_the_pickled_task_graph(client):
    df = cities(8)
    ddf = dd.from_pandas(df, npartitions=2, sort=False)
    out = client.map("{city}", ddf, namespace={"note": KEY}, progress=False, temperature=0.5)
    graph = cloudpickle.dumps(dict(out.__dask_graph__()))
    assert KEY.encode() not in graph
    assert KEY.encode("utf-16-le") not in graph and KEY.encode("utf-32-le") not in graph

    # the canary: a task that does carry the client's configuration is caught, so the check above can fail
    canary = ddf.map_partitions(lambda part, config: part, client.config, meta=ddf._meta)
    assert KEY.encode() in cloudpickle.dumps(dict(canary.__dask_graph__()))


def test_the_spec_carries_no_secret_and_pickles_small(client):
    out = client.map("{city}", dd.from_pandas(cities(2), npartitions=1, sort=False), progress=False)
    specs: list[ClusterSpec] = []

    class Spy(cloudpickle.CloudPickler):  # type: ignore[misc]
        def persistent_id(self, obj):  # type: ignore[no-untyped-def]
            if isinstance(obj, ClusterSpec):
                specs.append(obj)
            return None

    Spy(io.BytesIO()).dump(dict(out.__dask_graph__()))
    assert specs, "the partition tasks carry a ClusterSpec"
    assert specs[0].surface == "qianfan" and specs[0].base_url is None
    blob = pickle.dumps(specs[0])
    assert KEY.encode() not in blob and len(blob) < 4000


def test_a_worker_without_configuration_says_how_to_give_it(sim):
    # run_partition in this process, whose environment has no key (conftest clears it)
    spec = ClusterSpec(template="{city}", surface="qianfan", model=None, options={"progress": False})
    with pytest.raises(RuntimeError, match=r"workers' environment"):
        run_partition(cities(1), spec)


# -- one budget for the cluster, and resume -------------------------------------------------------------------------


def busiest_window(sim: ErnieSimulator, window: float) -> int:
    """The most chat requests that arrived within any ``window`` seconds."""
    starts = sorted(r.started for r in sim.chat_requests)
    return max((sum(1 for t in starts[i:] if t < s + window) for i, s in enumerate(starts)), default=0)


def prompts_of(sim: ErnieSimulator) -> list[str]:
    return [r.messages[-1]["content"] for r in sim.chat_requests]


RPM, WINDOW = 6, 0.5  # 6 requests per half second: demand (2 workers × 4 in flight) is far above it


def warm_up(client, sim, redis_url):  # type: ignore[no-untyped-def]
    """Both workers make their client, pool and limiter first: a cold worker's first requests reach the
    simulator long after their grant, which would blur the windows measured at the simulator."""
    ddf = dd.from_pandas(cities(8), npartitions=8, sort=False)
    client.map("{city} warm", ddf, concurrency=4, rpm=1000, rate_limit_backend=redis_url, rate_window=WINDOW,
               limiter_name="warm-up", progress=False).compute()
    sim.clear()


def test_the_redis_budget_holds_across_workers(client, sim, redis_url):
    warm_up(client, sim, redis_url)
    sim.latency = 0.01
    ddf = dd.from_pandas(cities(24), npartitions=4, sort=False)
    # the budget as the client already has it: Ernie(rpm=…, rate_limit_backend="redis://…")
    with Ernie("qianfan", api_key=KEY, base_url=sim.base_url("qianfan"), rpm=RPM,
               rate_limit_backend=redis_url) as limited:
        out = limited.map("{city}", ddf, concurrency=4, rate_window=WINDOW, limiter_name=uuid.uuid4().hex,
                          progress=False).compute()
    assert out["ernie_error"].isna().all()
    # arrivals trail the grants by a few ms: a slightly shorter window still sees every grant of one window
    assert busiest_window(sim, WINDOW - 0.1) <= RPM


def test_per_worker_limiters_exceed_the_budget(client, sim, redis_url):
    # the control: the same budget held by each worker process alone lets the cluster send about twice it
    warm_up(client, sim, redis_url)
    sim.latency = 0.01
    ddf = dd.from_pandas(cities(24), npartitions=4, sort=False)
    with pytest.warns(UserWarning, match="per worker process"):
        out = client.map("{city}", ddf, concurrency=4, rpm=RPM, rate_window=WINDOW, progress=False)
    assert out.compute()["ernie_error"].isna().all()
    assert busiest_window(sim, WINDOW - 0.1) > RPM


def test_a_rerun_sends_only_the_rows_that_are_missing(client, sim, redis_url):
    df = cities(16)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    job = "resume-" + uuid.uuid4().hex[:8]
    sim.push(*[Fault.status(400) for _ in range(5)])  # five rows fail for good in the first run
    first = client.map("{city}", ddf, job=job, rate_limit_backend=redis_url, row_retries=0,
                       progress=False).compute()
    failed = first.loc[first["ernie_error"].notna(), "city"].tolist()
    assert len(failed) == 5
    sim.clear()

    again = client.map("{city}", ddf, job=job, rate_limit_backend=redis_url, progress=False).compute()
    assert sorted(prompts_of(sim)) == sorted(failed)  # only the missing rows went out
    assert again["ernie_text"].tolist() == [echo_answer(c) for c in df["city"]]
    assert again["ernie_error"].isna().all()
    assert job_progress(redis_url, job)[0] == 16

    forget_job(redis_url, job)  # the record is gone: every row is sent again
    sim.clear()
    client.map("{city}", ddf, job=job, rate_limit_backend=redis_url, progress=False).compute()
    assert len(prompts_of(sim)) == 16

    # the default job id is the same for the same input, template and options: a re-run resumes by itself
    sim.clear()
    client.map("{city}", ddf, rate_limit_backend=redis_url, progress=False).compute()
    assert len(prompts_of(sim)) == 16
    sim.clear()
    client.map("{city}", ddf, rate_limit_backend=redis_url, progress=False).compute()
    assert prompts_of(sim) == []



# -- progress -------------------------------------------------------------------------------------------------------


def test_compute_true_draws_one_bar_for_the_whole_job_from_the_record(client, sim, redis_url, capsys):
    df = cities(12)
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    job = "bar-" + uuid.uuid4().hex[:8]
    got = client.map("{city}", ddf, job=job, rate_limit_backend=redis_url, compute=True)
    assert isinstance(got, pd.DataFrame)
    assert got["ernie_text"].tolist() == [echo_answer(c) for c in df["city"]]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "12/12" in err.rsplit("\r", 1)[-1]  # one bar, complete at the end
    assert f"tokens={int(got['ernie_tokens'].sum())}" in err and "row/s" in err

    # a re-run: the bar starts from what the record already holds, and nothing is sent
    sim.clear()
    client.map("{city}", ddf, job=job, rate_limit_backend=redis_url, compute=True)
    assert sim.chat_requests == []
    assert "12/12" in capsys.readouterr().err

def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(client, sim, redis_url, dask_client):
    import redis

    n, parts, concurrency = 80, 4, 2
    sim.latency = 0.05
    df = cities(n)
    ddf = dd.from_pandas(df, npartitions=parts, sort=False)
    offsets = [0, *ddf.map_partitions(len).compute().cumsum().tolist()]
    job = "kill-" + uuid.uuid4().hex[:8]
    out = client.map("{city}", ddf, job=job, concurrency=concurrency, rate_limit_backend=redis_url,
                     progress=False)
    future = dask_client.compute(out)
    store = redis.Redis.from_url(redis_url)
    rows_key = f"{{ernie_widget:map:{job}}}:rows"
    assert sim.wait_for(lambda: store.hlen(rows_key) >= 10, timeout=20)

    busy: list[str] = []
    assert sim.wait_for(lambda: busy.extend(a for a, tasks in dask_client.processing().items() if tasks) or busy)
    victim = busy[0]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    recorded = {key.decode() for key in store.hkeys(rows_key)}
    os.kill(pid, signal.SIGKILL)

    got = future.result(timeout=60)
    assert got["ernie_text"].tolist() == [echo_answer(c) for c in df["city"]]  # every row, once, in order
    assert list(got.index) == list(df.index) and got["ernie_error"].isna().all()

    def prompt(key: str) -> str:
        part, index, _ = key.split(":")
        return str(df["city"].iloc[offsets[int(part)] + int(index)])

    sent = prompts_of(sim)
    assert set(sent) == set(df["city"])
    assert all(sent.count(prompt(key)) == 1 for key in recorded)  # recorded rows were not sent again
    # only rows in flight on the dead worker (one thread × concurrency) may have gone out twice
    assert len(sent) - n <= concurrency
    dask_client.wait_for_workers(2, timeout=30)
    store.close()
