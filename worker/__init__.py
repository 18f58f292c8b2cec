"""The worker: steps an environment with the newest policy and pushes gradients or samples."""
