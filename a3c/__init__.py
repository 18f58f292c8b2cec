"""Code both the parameter server and the workers stand on: config, models, A3C math, codec."""
