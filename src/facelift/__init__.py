"""facelift: one photo of a person in, a 360-degree 3D head out, as 3D Gaussians."""

__version__ = "0.1.0"
