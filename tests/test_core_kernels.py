"""Distance kernels against numpy, on every SIMD path this CPU has and the scalar one."""

import os
import subprocess
import sys

import numpy as np
import pytest

import vjson
from vjson import _core

PATHS = vjson.simd_info()["available"]
DIMS = [1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 100, 128, 384, 1000]



@pytest.mark.parametrize("dim", DIMS)
def test_l2_and_ip_match_numpy(simd_path, dim):
    rng = np.random.default_rng(dim)
    for _ in range(5):
        a = rng.normal(size=dim).astype(np.float32)
        b = rng.normal(size=dim).astype(np.float32)
        expect_l2 = float(np.sum((a.astype(np.float64) - b) ** 2))
        expect_ip = 1.0 - float(np.dot(a.astype(np.float64), b))
        assert _core._kernel_distance(a, b, "l2") == pytest.approx(expect_l2, rel=1e-4, abs=1e-4)
        assert _core._kernel_distance(a, b, "ip") == pytest.approx(expect_ip, rel=1e-4, abs=1e-3)


def test_scalar_path_is_forced_and_agrees_with_best():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 77)).astype(np.float32)
    best = _core._kernel_distance(a, b, "l2")
    vjson.set_simd("scalar")
    try:
        assert vjson.simd_info()["active"] == "scalar"
        assert _core._kernel_distance(a, b, "l2") == pytest.approx(best, rel=1e-5)
    finally:
        vjson.set_simd("auto")
    assert vjson.simd_info()["active"] == vjson.simd_info()["best"]


def test_set_simd_rejects_unknown():
    with pytest.raises(vjson.InvalidInputError):
        vjson.set_simd("sse9")


def _import_with_simd_env(value):
    """A new process importing vjson under VJSON_SIMD=value, warnings turned into text."""
    code = ("import numpy as np, vjson\n"
            "a = np.arange(37, dtype=np.float32)\n"
            "ids, d = vjson.brute_force_knn(a[None], a[None] + 1, 1)\n"
            "print(vjson.simd_info()['active'], float(d[0, 0]))\n")
    return subprocess.run([sys.executable, "-W", "always::RuntimeWarning", "-c", code],
                          env={**os.environ, "VJSON_SIMD": value}, capture_output=True, text=True, timeout=120)


def test_env_var_forces_scalar_in_a_new_process():
    out = _import_with_simd_env("scalar")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scalar", "37.0"]
    assert "Warning" not in out.stderr


def test_env_var_naming_a_kernel_this_cpu_lacks_warns_and_uses_the_best():
    missing = [name for name in ("neon", "avx512", "avx2") if name not in PATHS][0]
    out = _import_with_simd_env(missing)
    best = vjson.simd_info()["best"]
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [best, "37.0"]
    assert f"cannot run the {missing} kernels; vjson uses its {best} kernels" in out.stderr
    assert "RuntimeWarning" in out.stderr


def test_env_var_with_an_unknown_name_warns_and_uses_the_best():
    out = _import_with_simd_env("sse9")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [vjson.simd_info()["best"], "37.0"]
    assert "VJSON_SIMD='sse9' is not a kernel family" in out.stderr


def test_set_simd_refuses_a_kernel_this_cpu_lacks():
    missing = [name for name in ("neon", "avx512", "avx2") if name not in PATHS][0]
    before = vjson.simd_info()["active"]
    with pytest.raises(vjson.InvalidInputError, match=f"does not support the {missing} kernels"):
        vjson.set_simd(missing)
    assert vjson.simd_info()["active"] == before


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_brute_force_knn_matches_numpy(metric):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(500, 19)).astype(np.float32)
    queries = rng.normal(size=(20, 19)).astype(np.float32)
    ids, dists = vjson.brute_force_knn(data, queries, 7, metric, num_threads=2)
    d64, q64 = data.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":
        full = ((q64[:, None, :] - d64[None]) ** 2).sum(-1)
    else:
        if metric == "cosine":
            d64 = d64 / np.linalg.norm(d64, axis=1, keepdims=True)
            q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        full = 1 - q64 @ d64.T
    expect = np.argsort(full, axis=1, kind="stable")[:, :7]
    np.testing.assert_allclose(dists, np.take_along_axis(full, expect, 1), rtol=1e-4, atol=1e-4)
    # ids equal up to exact ties in float32
    assert (ids == expect).mean() > 0.99


def test_brute_force_pads_when_k_exceeds_rows():
    data = np.eye(3, dtype=np.float32)
    ids, dists = vjson.brute_force_knn(data, data[:1], 5)
    assert ids[0, :3].tolist() == [0, 1, 2] or set(ids[0, :3]) == {0, 1, 2}
    assert ids[0, 3:].tolist() == [-1, -1] and np.isinf(dists[0, 3:]).all()
