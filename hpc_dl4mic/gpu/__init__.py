"""GPU checks: the in-image probe, what its report means, and running it as a job."""
