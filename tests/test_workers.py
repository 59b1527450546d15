"""Independent simulations on local worker processes and on a dask.distributed cluster (a LocalCluster of 2
workers started here) give identical results; a scheduler that does not answer is a clear error."""
import shutil

import numpy as np
import pytest
import yaml

from kchip.errors import RunError
from kchip.flow import run_flow
from kchip.sim.workers import pool

from test_flow import FLOW

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


@pytest.fixture(scope="module")
def cluster():
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield c.scheduler_address
    c.close()


def test_flow_sweep_on_local_processes_and_on_a_dask_cluster(tmp_path, cluster):
    """The simulate stage's chunks (5 inputs, one per ngspice run) on 2 local processes and on the 2-worker
    LocalCluster: the same outputs, bit for bit, and the same report figures."""
    flow = dict(FLOW, forward={"num_inputs": 5, "seed": 0}, simulate={"num_inputs": 5, "chunk": 1})
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(flow))
    a = run_flow(f, tmp_path / "local", workers=2)
    b = run_flow(f, tmp_path / "dask", scheduler=cluster)
    ya = np.load(tmp_path / "local" / "tiny" / "05-simulate" / "outputs.npy")
    yb = np.load(tmp_path / "dask" / "tiny" / "05-simulate" / "outputs.npy")
    assert ya.shape == (5, ya.shape[1]) and np.array_equal(ya, yb)
    assert a["simulate"]["vs_L1"] == b["simulate"]["vs_L1"] and a["simulate"]["vs_L0"] == b["simulate"]["vs_L0"]


def test_pool_runs_tasks_on_the_cluster(cluster):
    with pool(scheduler=cluster) as ex:
        assert [f.result() for f in [ex.submit(pow, 2, k) for k in range(4)]] == [1, 2, 4, 8]


def test_a_scheduler_that_does_not_answer_is_a_clear_error():
    with pytest.raises(RunError, match=r"--scheduler tcp://127.0.0.1:9: no dask scheduler answered within 2 s"):
        with pool(scheduler="tcp://127.0.0.1:9", timeout_s=2):
            pass


def test_sweep_on_local_processes_and_on_a_dask_cluster(cluster):
    """The chip-level L2 corner / Monte Carlo sweep (5 corners + 20 draws) on 2 local processes and on the 2-worker
    LocalCluster: identical outputs."""
    import numpy as np
    from kchip.netlist.transistor import transistor_netlist
    from kchip.sim.sweep import run_sweep
    from test_netlist_transistor import _stable_spec
    spec = _stable_spec()
    _, rep = transistor_netlist(spec)
    x = np.array([[0.3, -0.2], [-0.4, 0.1]])
    corners = ["tt", "ss", "ff", "sf", "fs"]
    a = run_sweep(spec, rep, x, corners, 20, workers=2)
    b = run_sweep(spec, rep, x, corners, 20, scheduler=cluster)
    assert len(a) == 25 and all(np.array_equal(p["y"], q["y"]) for p, q in zip(a, b))


def test_characterization_decks_on_the_cluster(cluster):
    """run_decks (the characterization's parallel decks: `kchip characterize --scheduler`) on the LocalCluster and
    in local processes: the same plots, Monte Carlo seeds included (deck k gets seed 1 + k either way)."""
    import numpy as np
    from kchip.sim.ngspice import run_decks
    decks = [f"* rc {k}\nV1 a 0 1\nR1 a b {1 + k}k\nR2 b 0 {{agauss(1000, 100, 1)}}\n.op\n.end\n" for k in range(3)]
    a = run_decks(decks, jobs=2)
    b = run_decks(decks, jobs=2, scheduler=cluster)
    for x, y in zip(a, b):
        assert np.array_equal(x.plots[0]["v(b)"], y.plots[0]["v(b)"])
    assert len({float(r.plots[0]["v(b)"][0]) for r in a}) == 3
