"""DTensor inputs on two CPU processes (gloo): batch-sharded and replicated inputs give the
single-process result, forward and backward, with no collective; matrix-dimension sharding
raises a ValueError naming it.

One spawn runs every check (process start-up is most of the cost); each rank writes what it
saw to a file, and the assertions run here in the parent.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

WORLD = 2
CASES = [  # (name, function of A)
    ("sqrtm", lambda ts, a: ts.sqrtm(a, method="scaled_ns")),
    ("inv_sqrtm", lambda ts, a: ts.inv_sqrtm(a, method="scaled_ns", eps=1e-3)),
    ("inv_sqrtm eigh", lambda ts, a: ts.inv_sqrtm(a, method="eigh")),
    ("inv_root 4", lambda ts, a: ts.inv_root(a, 4, method="scaled_ns")),
    ("inv_root 2 auto", lambda ts, a: ts.inv_root(a, 2)),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _inputs():
    from tritonsqrt import testing

    a = testing.spd_with_condition(4, 6, 100.0, seed=3).reshape(2, 2, 6, 6)  # batch (2, 2): shard dim 0
    g = testing.random_symmetric(4, 6, seed=4).reshape(2, 2, 6, 6)
    return a, g


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor
        from torch.distributed.tensor.debug import CommDebugMode

        import tritonsqrt as ts

        mesh = init_device_mesh("cpu", (WORLD,))
        a, g = _inputs()
        seen = {}
        for placement in (Shard(0), Replicate()):
            for name, fn in CASES:
                a_dist = distribute_tensor(a, mesh, [placement]).requires_grad_(True)
                g_dist = distribute_tensor(g, mesh, [placement])
                with CommDebugMode() as comm:
                    out = fn(ts, a_dist)
                    (grad,) = torch.autograd.grad(out, a_dist, g_dist)
                seen[(str(placement), name)] = {
                    "collectives": comm.get_total_counts(), "placements": (out.placements, grad.placements),
                    "local": (out.to_local().clone(), grad.to_local().clone()),
                }
        errors = {}
        refused = {dim: distribute_tensor(a, mesh, [Shard(dim)]) for dim in (1, 2, 3)}  # batch dim 1, matrix dims
        refused["partial"] = DTensor.from_local(a, mesh, [Partial()])  # an unreduced sum
        for key, a_dist in refused.items():
            try:
                ts.inv_root(a_dist, 4)
                errors[key] = None
            except ValueError as error:
                errors[key] = str(error)
        torch.save({"seen": seen, "errors": errors}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # both ranks done before gloo is torn down (tests/test_sync_decorrelated_batch_norm.py)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    import torch.multiprocessing as mp

    out_dir = tmp_path_factory.mktemp("dtensor")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


@pytest.mark.parametrize("placement", ["S(0)", "R"])
@pytest.mark.parametrize("name", [name for name, _ in CASES])
def test_local_result_is_the_single_process_one(ranks, placement, name):
    from torch.distributed.tensor import Replicate, Shard

    import tritonsqrt as ts

    fn = dict(CASES)[name]
    a, g = _inputs()
    a_req = a.clone().requires_grad_(True)
    out = fn(ts, a_req)
    (grad,) = torch.autograd.grad(out, a_req, g)
    expected_placement = Shard(0) if placement == "S(0)" else Replicate()
    for rank, result in enumerate(ranks):
        seen = result["seen"][(placement, name)]
        assert seen["collectives"] == 0
        assert seen["placements"] == ((expected_placement,), (expected_placement,))
        rows = slice(rank, rank + 1) if placement == "S(0)" else slice(None)  # batch dim 0 split in two
        local_out, local_grad = seen["local"]
        torch.testing.assert_close(local_out, out.detach()[rows], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(local_grad, grad[rows], rtol=1e-5, atol=1e-6)


def test_sharding_a_matrix_dimension_is_refused(ranks):
    for result in ranks:
        errors = result["errors"]
        assert "shard it on dimension 0" in errors[1]
        assert "inv_root: A is a DTensor sharded on a matrix dimension" in errors[2]
        assert "sharded on a matrix dimension" in errors[3]
        assert "placed as P(sum)" in errors["partial"] and "only Replicate and Shard(0)" in errors["partial"]
