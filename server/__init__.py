"""The parameter server: global networks, the learner, the episode budget, the gRPC service."""
