from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]
    STREAM_SYSTEM: _ClassVar[Stream]
STREAM_UNSPECIFIED: Stream
STREAM_STDOUT: Stream
STREAM_STDERR: Stream
STREAM_SYSTEM: Stream

class AuthRequest(_message.Message):
    __slots__ = ("token", "worker_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    worker_id: str
    def __init__(self, token: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("credential", "expires_at")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    credential: str
    expires_at: float
    def __init__(self, credential: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "ack", "log", "progress", "result", "drain")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: Heartbeat
    ack: Ack
    log: LogChunk
    progress: Progress
    result: Result
    drain: Drain
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., log: _Optional[_Union[LogChunk, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("slots", "cpu_cores", "memory_mb")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    slots: int
    cpu_cores: float
    memory_mb: int
    def __init__(self, slots: _Optional[int] = ..., cpu_cores: _Optional[float] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class RunningJob(_message.Message):
    __slots__ = ("job_id", "attempt", "tenant")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    tenant: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., tenant: _Optional[str] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("worker_id", "kinds", "labels", "capacity", "version", "host", "running", "protocol_version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    capacity: Capacity
    version: str
    host: str
    running: _containers.RepeatedCompositeFieldContainer[RunningJob]
    protocol_version: int
    def __init__(self, worker_id: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capacity: _Optional[_Union[Capacity, _Mapping]] = ..., version: _Optional[str] = ..., host: _Optional[str] = ..., running: _Optional[_Iterable[_Union[RunningJob, _Mapping]]] = ..., protocol_version: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("cpu_percent", "memory_percent", "running", "ts")
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    cpu_percent: float
    memory_percent: float
    running: _containers.RepeatedCompositeFieldContainer[RunningJob]
    ts: float
    def __init__(self, cpu_percent: _Optional[float] = ..., memory_percent: _Optional[float] = ..., running: _Optional[_Iterable[_Union[RunningJob, _Mapping]]] = ..., ts: _Optional[float] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("job_id", "attempt", "accepted", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    accepted: bool
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("job_id", "attempt", "seq", "stream", "data", "ts", "tenant")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    seq: int
    stream: Stream
    data: bytes
    ts: float
    tenant: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ..., stream: _Optional[_Union[Stream, str]] = ..., data: _Optional[bytes] = ..., ts: _Optional[float] = ..., tenant: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("job_id", "attempt", "fraction", "message", "tenant")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    fraction: float
    message: str
    tenant: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., fraction: _Optional[float] = ..., message: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("job_id", "attempt", "succeeded", "result_json", "error", "retryable", "handed_back", "run_s", "tenant")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    HANDED_BACK_FIELD_NUMBER: _ClassVar[int]
    RUN_S_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    succeeded: bool
    result_json: bytes
    error: str
    retryable: bool
    handed_back: bool
    run_s: float
    tenant: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., succeeded: _Optional[bool] = ..., result_json: _Optional[bytes] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., handed_back: _Optional[bool] = ..., run_s: _Optional[float] = ..., tenant: _Optional[str] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("grace_s",)
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    grace_s: float
    def __init__(self, grace_s: _Optional[float] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("registered", "assignment", "cancel", "credential", "drain", "disconnect", "log_ack")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    LOG_ACK_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assignment: Assignment
    cancel: Cancel
    credential: Credential
    drain: Drain
    disconnect: Disconnect
    log_ack: LogAck
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assignment: _Optional[_Union[Assignment, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., credential: _Optional[_Union[Credential, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., disconnect: _Optional[_Union[Disconnect, _Mapping]] = ..., log_ack: _Optional[_Union[LogAck, _Mapping]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("worker_id", "server", "heartbeat_s", "lease_s")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    server: str
    heartbeat_s: float
    lease_s: float
    def __init__(self, worker_id: _Optional[str] = ..., server: _Optional[str] = ..., heartbeat_s: _Optional[float] = ..., lease_s: _Optional[float] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("job_id", "attempt", "tenant", "kind", "queue", "payload_json", "labels", "timeout_s", "max_attempts", "created_at", "mask", "traceparent")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    tenant: str
    kind: str
    queue: str
    payload_json: bytes
    labels: _containers.ScalarMap[str, str]
    timeout_s: float
    max_attempts: int
    created_at: float
    mask: _containers.RepeatedScalarFieldContainer[str]
    traceparent: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., tenant: _Optional[str] = ..., kind: _Optional[str] = ..., queue: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., labels: _Optional[_Mapping[str, str]] = ..., timeout_s: _Optional[float] = ..., max_attempts: _Optional[int] = ..., created_at: _Optional[float] = ..., mask: _Optional[_Iterable[str]] = ..., traceparent: _Optional[str] = ...) -> None: ...

class LogAck(_message.Message):
    __slots__ = ("job_id", "attempt", "seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    seq: int
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("job_id", "attempt", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Disconnect(_message.Message):
    __slots__ = ("reason", "retry")
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    retry: bool
    def __init__(self, reason: _Optional[str] = ..., retry: _Optional[bool] = ...) -> None: ...
