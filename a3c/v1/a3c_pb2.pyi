from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_GRADIENT: _ClassVar[Mode]
    MODE_DATA: _ClassVar[Mode]
    MODE_EVALUATOR: _ClassVar[Mode]
MODE_UNSPECIFIED: Mode
MODE_GRADIENT: Mode
MODE_DATA: Mode
MODE_EVALUATOR: Mode

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Moments(_message.Message):
    __slots__ = ("count", "mean", "m2")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    M2_FIELD_NUMBER: _ClassVar[int]
    count: float
    mean: Tensor
    m2: Tensor
    def __init__(self, count: _Optional[float] = ..., mean: _Optional[_Union[Tensor, _Mapping]] = ..., m2: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class Statistics(_message.Message):
    __slots__ = ("obs", "returns")
    OBS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    obs: Moments
    returns: Moments
    def __init__(self, obs: _Optional[_Union[Moments, _Mapping]] = ..., returns: _Optional[_Union[Moments, _Mapping]] = ...) -> None: ...

class WeightSet(_message.Message):
    __slots__ = ("version", "actor", "critic", "statistics")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CRITIC_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    version: int
    actor: _containers.RepeatedCompositeFieldContainer[Tensor]
    critic: _containers.RepeatedCompositeFieldContainer[Tensor]
    statistics: Statistics
    def __init__(self, version: _Optional[int] = ..., actor: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., critic: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., statistics: _Optional[_Union[Statistics, _Mapping]] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("mode", "name", "worker_id", "num_envs")
    MODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_ENVS_FIELD_NUMBER: _ClassVar[int]
    mode: Mode
    name: str
    worker_id: str
    num_envs: int
    def __init__(self, mode: _Optional[_Union[Mode, str]] = ..., name: _Optional[str] = ..., worker_id: _Optional[str] = ..., num_envs: _Optional[int] = ...) -> None: ...

class ConnectReply(_message.Message):
    __slots__ = ("worker_id", "config_json", "obs_dim", "action_dim", "incarnation")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    OBS_DIM_FIELD_NUMBER: _ClassVar[int]
    ACTION_DIM_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    config_json: str
    obs_dim: int
    action_dim: int
    incarnation: str
    def __init__(self, worker_id: _Optional[str] = ..., config_json: _Optional[str] = ..., obs_dim: _Optional[int] = ..., action_dim: _Optional[int] = ..., incarnation: _Optional[str] = ...) -> None: ...

class StartEpisodeRequest(_message.Message):
    __slots__ = ("worker_id", "count", "held_lease_ids")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HELD_LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    count: int
    held_lease_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, worker_id: _Optional[str] = ..., count: _Optional[int] = ..., held_lease_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class StartEpisodeReply(_message.Message):
    __slots__ = ("status", "lease_id", "lease_ids", "step_limits")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[StartEpisodeReply.Status]
        GRANTED: _ClassVar[StartEpisodeReply.Status]
        WAIT: _ClassVar[StartEpisodeReply.Status]
        DONE: _ClassVar[StartEpisodeReply.Status]
    STATUS_UNSPECIFIED: StartEpisodeReply.Status
    GRANTED: StartEpisodeReply.Status
    WAIT: StartEpisodeReply.Status
    DONE: StartEpisodeReply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    STEP_LIMITS_FIELD_NUMBER: _ClassVar[int]
    status: StartEpisodeReply.Status
    lease_id: int
    lease_ids: _containers.RepeatedScalarFieldContainer[int]
    step_limits: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, status: _Optional[_Union[StartEpisodeReply.Status, str]] = ..., lease_id: _Optional[int] = ..., lease_ids: _Optional[_Iterable[int]] = ..., step_limits: _Optional[_Iterable[int]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class LeaveReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PullWeightsRequest(_message.Message):
    __slots__ = ("known_version", "actor_only")
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ONLY_FIELD_NUMBER: _ClassVar[int]
    known_version: int
    actor_only: bool
    def __init__(self, known_version: _Optional[int] = ..., actor_only: _Optional[bool] = ...) -> None: ...

class PullWeightsReply(_message.Message):
    __slots__ = ("unchanged", "weights")
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    unchanged: bool
    weights: WeightSet
    def __init__(self, unchanged: _Optional[bool] = ..., weights: _Optional[_Union[WeightSet, _Mapping]] = ...) -> None: ...

class EnvSlot(_message.Message):
    __slots__ = ("lease_id", "steps", "episode_end", "episode_return", "episode_length")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_END_FIELD_NUMBER: _ClassVar[int]
    EPISODE_RETURN_FIELD_NUMBER: _ClassVar[int]
    EPISODE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    lease_id: int
    steps: int
    episode_end: bool
    episode_return: float
    episode_length: int
    def __init__(self, lease_id: _Optional[int] = ..., steps: _Optional[int] = ..., episode_end: _Optional[bool] = ..., episode_return: _Optional[float] = ..., episode_length: _Optional[int] = ...) -> None: ...

class PushHeader(_message.Message):
    __slots__ = ("worker_id", "seq", "base_version", "envs", "increments")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    INCREMENTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    seq: int
    base_version: int
    envs: _containers.RepeatedCompositeFieldContainer[EnvSlot]
    increments: Statistics
    def __init__(self, worker_id: _Optional[str] = ..., seq: _Optional[int] = ..., base_version: _Optional[int] = ..., envs: _Optional[_Iterable[_Union[EnvSlot, _Mapping]]] = ..., increments: _Optional[_Union[Statistics, _Mapping]] = ...) -> None: ...

class RolloutBatch(_message.Message):
    __slots__ = ("states", "actions", "rewards", "next_states", "terminated", "behaviour_log_probs")
    STATES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STATES_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    BEHAVIOUR_LOG_PROBS_FIELD_NUMBER: _ClassVar[int]
    states: Tensor
    actions: Tensor
    rewards: Tensor
    next_states: Tensor
    terminated: _containers.RepeatedScalarFieldContainer[bool]
    behaviour_log_probs: Tensor
    def __init__(self, states: _Optional[_Union[Tensor, _Mapping]] = ..., actions: _Optional[_Union[Tensor, _Mapping]] = ..., rewards: _Optional[_Union[Tensor, _Mapping]] = ..., next_states: _Optional[_Union[Tensor, _Mapping]] = ..., terminated: _Optional[_Iterable[bool]] = ..., behaviour_log_probs: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class SamplePush(_message.Message):
    __slots__ = ("header", "rollouts")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    header: PushHeader
    rollouts: RolloutBatch
    def __init__(self, header: _Optional[_Union[PushHeader, _Mapping]] = ..., rollouts: _Optional[_Union[RolloutBatch, _Mapping]] = ...) -> None: ...

class GradientPush(_message.Message):
    __slots__ = ("header", "actor_grads", "critic_grads")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACTOR_GRADS_FIELD_NUMBER: _ClassVar[int]
    CRITIC_GRADS_FIELD_NUMBER: _ClassVar[int]
    header: PushHeader
    actor_grads: _containers.RepeatedCompositeFieldContainer[Tensor]
    critic_grads: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, header: _Optional[_Union[PushHeader, _Mapping]] = ..., actor_grads: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., critic_grads: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class PushReply(_message.Message):
    __slots__ = ("seq", "version", "lease_valid", "weights", "lost_lease_ids")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LEASE_VALID_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    LOST_LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    version: int
    lease_valid: bool
    weights: WeightSet
    lost_lease_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, seq: _Optional[int] = ..., version: _Optional[int] = ..., lease_valid: _Optional[bool] = ..., weights: _Optional[_Union[WeightSet, _Mapping]] = ..., lost_lease_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class NextEvaluationRequest(_message.Message):
    __slots__ = ("after_env_steps",)
    AFTER_ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    after_env_steps: int
    def __init__(self, after_env_steps: _Optional[int] = ...) -> None: ...

class NextEvaluationReply(_message.Message):
    __slots__ = ("status", "env_steps", "weights", "episodes", "seed")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[NextEvaluationReply.Status]
        READY: _ClassVar[NextEvaluationReply.Status]
        WAIT: _ClassVar[NextEvaluationReply.Status]
        DONE: _ClassVar[NextEvaluationReply.Status]
    STATUS_UNSPECIFIED: NextEvaluationReply.Status
    READY: NextEvaluationReply.Status
    WAIT: NextEvaluationReply.Status
    DONE: NextEvaluationReply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    status: NextEvaluationReply.Status
    env_steps: int
    weights: WeightSet
    episodes: int
    seed: int
    def __init__(self, status: _Optional[_Union[NextEvaluationReply.Status, str]] = ..., env_steps: _Optional[int] = ..., weights: _Optional[_Union[WeightSet, _Mapping]] = ..., episodes: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class EvaluationReport(_message.Message):
    __slots__ = ("env_steps", "version", "returns", "lengths")
    ENV_STEPS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    env_steps: int
    version: int
    returns: _containers.RepeatedScalarFieldContainer[float]
    lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, env_steps: _Optional[int] = ..., version: _Optional[int] = ..., returns: _Optional[_Iterable[float]] = ..., lengths: _Optional[_Iterable[int]] = ...) -> None: ...

class EvaluationReportReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
