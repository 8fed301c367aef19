"""Image -> views -> Gaussians -> renders, and the files a run writes."""
