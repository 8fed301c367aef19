"""The procedural demo bust: deterministic per seed, valid Gaussians, a head inside the crop box."""

from __future__ import annotations

import torch

from facelift.gaussians import REFERENCE_CROP_BOX
from facelift.gaussians.procedural import demo_bust

FIELDS = ("means", "quats", "scales", "opacities", "sh")


def test_same_seed_same_bust_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b = demo_bust(1500, seed=3), demo_bust(1500, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = demo_bust(1500, seed=4)
    assert not torch.equal(a.sh[: min(a.num, c.num)], c.sh[: min(a.num, c.num)])


def test_bust_is_a_valid_unbatched_set():
    g = demo_bust(2000)
    assert len(g.shape) == 1 and 1000 < g.num <= 2000 and g.sh_degree == 0
    torch.testing.assert_close(torch.linalg.norm(g.quats, dim=-1), torch.ones(g.num), rtol=0, atol=1e-6)
    assert (g.scales > 0).all() and torch.isfinite(g.means).all()
    assert ((g.rgb >= 0) & (g.rgb <= 1)).all()
    assert ((g.opacities > 0) & (g.opacities < 1)).all()


def test_head_inside_the_reference_crop_box():
    g = demo_bust(2000)
    x0, x1, y0, y1, z0, z1 = REFERENCE_CROP_BOX
    m = g.means
    assert (m[:, 0] >= x0).all() and (m[:, 0] <= x1).all()
    assert (m[:, 1] >= y0).all() and (m[:, 1] <= y1).all()
    assert (m[:, 2] <= z1).all()
    head = m[:, 2] > -0.3
    assert head.sum() > g.num // 3
    assert (m[head, 1].min() < -0.5) and (m[head, 1].max() < 0.7)  # the face looks toward -y
