"""Procedural synthetic data: analytic-primitive heads and objects, a batched ray caster, datasets."""
