"""The learner's diagnostics: their names, their order in the compiled steps' output,
and what each means (the help of its a3c_server_learner_NAME metric).

a3c.algo.losses(..., diagnostics=True) computes LOSS_DIAGNOSTICS, each over the batch's
real steps, from the loss's own forward pass; a3c.trainer's diagnosed apply adds
APPLY_DIAGNOSTICS. numpy and TensorFlow free, so the server's metrics can name them before
TensorFlow loads.
"""

from __future__ import annotations

DIAGNOSE_SECONDS = 0.5
"""The learner diagnoses at most one update per DIAGNOSE_SECONDS (server.learner)."""

DIAGNOSTICS_HELP = {
    "policy_loss": "Policy-gradient loss per step, -log pi(a|s) * A (data mode).",
    "value_loss": "Value loss per step, (y - V(s))^2 in training-reward units (data mode).",
    "entropy": "Entropy of the policy per step, in nats (data mode).",
    "policy_std": "Standard deviation of the Gaussian policy, env units (data mode, Box).",
    "explained_variance": "Critic's explained variance 1 - Var(y - V) / Var(y) (data mode).",
    "value_mean": "Mean value estimate V(s), training-reward units (data mode).",
    "advantage_mean": "Mean advantage before normalisation (data mode).",
    "advantage_std": "Standard deviation of the advantages before normalisation (data mode).",
    "log_ratio_abs_mean": "Mean |log pi/mu|: how far the learner's policy is from the "
    "workers' that chose the actions (data mode).",
    "vtrace_truncated_ratio": "Fraction of steps whose pi/mu exceeds --vtrace-rho-clip: "
    "where V-trace truncates (data mode).",
}
"""The help text of each LOSS_DIAGNOSTICS gauge, a3c_server_learner_NAME (the latest
diagnosed update's value)."""

LOSS_DIAGNOSTICS = tuple(DIAGNOSTICS_HELP)
"""What a3c.algo.losses(..., diagnostics=True) also returns, in this order, each over the
batch's real steps: the policy-gradient loss per step (-log pi * A, entropy bonus excluded) and
the value loss per step ((y - V)^2); the policy's entropy and (continuous actions; NaN
for discrete) its standard deviation; the critic's explained variance 1 - Var(y - V) /
Var(y); the mean value estimate; the advantages' mean and std (before normalisation);
the mean |log pi/mu| against the behaviour log-probabilities the batch carries, and the
fraction of steps whose pi/mu exceeds the V-trace truncation vtrace_rho_clip (both
meaningless for a batch without behaviour log-probabilities)."""


OFF_POLICY_DIAGNOSTICS = ("log_ratio_abs_mean", "vtrace_truncated_ratio")
"""The diagnostics that mean something only for a batch with behaviour log-probabilities."""


APPLY_DIAGNOSTICS = ("actor_grad_norm", "critic_grad_norm", "actor_lr", "critic_lr")
"""What a diagnosed apply also returns: each network's global gradient norm before
clipping (clipping bit where it exceeds grad_clip_norm) and its learning rate."""
