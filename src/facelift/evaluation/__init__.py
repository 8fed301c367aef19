"""Evaluation: metrics, the held-out set, ``facelift eval`` (:mod:`.runner`) and ``facelift bench`` (:mod:`.bench`)."""
