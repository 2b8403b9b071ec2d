"""The device's measured dense matmul throughput: the roofline against which model FLOP utilisation is read."""

import time

import jax
import jax.numpy as jnp


def matmul_flops(n: int, dtype=jnp.float32, reps: int = 10) -> float:
  """FLOP/s of a jitted square ``[n, n] @ [n, n]`` in ``dtype``, compile excluded."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t0 = time.perf_counter()
  for _ in range(reps):
    out = f(a)
  out.block_until_ready()
  return 2 * n ** 3 * reps / (time.perf_counter() - t0)
