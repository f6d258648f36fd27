"""Type stubs of ioq: completion-based asynchronous I/O (see ioq/__init__.py)."""
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type, Union

__version__: str
__all__: List[str]

# An address: (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6; numeric hosts.
Address = Union[Tuple[str, int], Tuple[str, int, int, int]]
# Buffers are used in place: anything with the buffer protocol (bytes-like).
ReadableBuffer = Union[bytes, bytearray, memoryview, Any]
WritableBuffer = Union[bytearray, memoryview, Any]
Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# Constants of ioq.h without their IOQ_ prefix.
AF_INET: int
AF_INET6: int
AF_UNSPEC: int
BACKEND_AUTO: int
BACKEND_EPOLL: int
BACKEND_IOCP: int
BACKEND_KQUEUE: int
BACKEND_URING: int
CAP_BATCHED_SUBMIT: int
CAP_LOOP_FD: int
CAP_MULTISHOT_ACCEPT: int
CAP_MULTISHOT_RECV: int
CAP_NATIVE_FILES: int
CAP_PROVIDED_BUFFERS: int
CAP_ZEROCOPY_SEND: int
CQE_BUFFER: int
CQE_MORE: int
EACCES: int
EADDRINUSE: int
EADDRNOTAVAIL: int
EAFNOSUPPORT: int
EAGAIN: int
EBADHANDLE: int
EBUSY: int
ECANCELED: int
ECONNABORTED: int
ECONNREFUSED: int
ECONNRESET: int
EDESTADDRREQ: int
EEXIST: int
EFBIG: int
EHOSTUNREACH: int
EINVAL: int
EIO: int
EISDIR: int
ELOOP: int
EMFILE: int
EMISUSE: int
EMSGSIZE: int
ENAMETOOLONG: int
ENETUNREACH: int
ENFILE: int
ENOBUFS: int
ENOENT: int
ENOMEM: int
ENOSPC: int
ENOSYS: int
ENOTCONN: int
ENOTDIR: int
ENOTFOUND: int
ENOTSUP: int
EPERM: int
EPIPE: int
EROFS: int
ESHUTDOWN: int
ETIMEDOUT: int
EUNKNOWN: int
KIND_FILE: int
KIND_LOCAL: int
KIND_LOCAL_LISTENER: int
KIND_TCP: int
KIND_TCP_LISTENER: int
KIND_UDP: int
MAX_IOV: int
MAX_LEN: int
MULTISHOT: int
OK: int
OPEN_APPEND: int
OPEN_CREATE: int
OPEN_EXCL: int
OPEN_READ: int
OPEN_TRUNC: int
OPEN_WRITE: int
OPT_BROADCAST: int
OPT_KEEPALIVE: int
OPT_LINGER: int
OPT_NODELAY: int
OPT_RCVBUF: int
OPT_REUSEADDR: int
OPT_SNDBUF: int
OP_ACCEPT: int
OP_CANCEL: int
OP_CLOSE: int
OP_CONNECT: int
OP_FSYNC: int
OP_LOCAL_CONNECT: int
OP_NONE: int
OP_OPEN: int
OP_POST: int
OP_READ: int
OP_RECV: int
OP_RECVFROM: int
OP_RECV_POOL: int
OP_RESOLVE: int

OP_SEND: int
OP_SENDTO: int
OP_SENDV: int
OP_SHUTDOWN: int
OP_TIMEOUT: int
OP_WRITE: int
RESOLVE_INET: int
RESOLVE_INET6: int
RESOLVE_NUMERIC: int
REUSEPORT: int
UNLINK: int
V6ONLY: int
VERSION_MAJOR: int
VERSION_MINOR: int
VERSION_NUMBER: int
VERSION_PATCH: int

# ABI 1.1: watches, notifiers, signals, pipes, terminals and child processes
ENOEXEC: int
ENOTTY: int
ESRCH: int
KIND_NOTIFIER: int
KIND_PIPE: int
KIND_PROCESS: int
KIND_TTY: int
KIND_WATCH: int
LOOP_HOST_FLUSH: int
OP_NOTIFY_WAIT: int
OP_PROCESS_WAIT: int
OP_SIGNAL: int
OP_WATCH: int
SPAWN_NEW_SESSION: int
SPAWN_SEARCH_PATH: int
STDIO_HANDLE: int
STDIO_INHERIT: int
STDIO_NULL: int
STDIO_OS: int
STDIO_PIPE: int
TTY_MODE_NORMAL: int
TTY_MODE_RAW: int
WATCH_ERROR: int
WATCH_HANGUP: int
WATCH_READABLE: int
WATCH_WRITABLE: int
VERSION_STRING: str
OP_NAMES: Dict[int, str]

class Error(OSError):
    code: int
    name: str
    def __init__(self, code: int, message: Optional[str] = ...) -> None: ...

def error(code: int) -> Error: ...
def strerror(code: int) -> str: ...
def errname(code: int) -> str: ...
def version() -> int: ...
def version_string() -> str: ...
def addr_parse(text: str) -> Address: ...
def addr_format(addr: Address) -> str: ...

class Completion:
    token: int
    result: int
    value: int
    op: int
    flags: int
    def __init__(self, token: int, result: int, value: int, op: int, flags: int,
                 extra: Any = ...) -> None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> Optional[Error]: ...
    @property
    def more(self) -> bool: ...
    @property
    def buffer(self) -> bool: ...
    @property
    def handle(self) -> int: ...
    @property
    def addr(self) -> Optional[Address]: ...
    @property
    def addrs(self) -> Optional[List[Address]]: ...
    @property
    def op_name(self) -> str: ...
    def check(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...

class Loop:
    def __init__(self, backend: Optional[str] = ..., *, threadpool_size: int = ...) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Loop": ...
    def __exit__(self, *exc: Any) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def caps(self) -> int: ...
    def fileno(self) -> int: ...
    def now(self) -> int: ...
    def pinned(self) -> int: ...
    def poll(self, timeout: Optional[float] = ..., max: int = ...) -> List[Completion]: ...
    def submit(self) -> None: ...
    def wake(self) -> None: ...
    def post(self, token: int, result: int = ...) -> None: ...
    def tcp_listen(self, addr: Address, backlog: int = ..., *, reuseport: bool = ...,
                   v6only: bool = ..., flags: int = ...) -> int: ...
    def udp_bind(self, addr: Address, *, reuseport: bool = ..., v6only: bool = ...,
                 flags: int = ...) -> int: ...
    def local_listen(self, path: Path, backlog: int = ..., *, unlink: bool = ...,
                     flags: int = ...) -> int: ...
    def accept(self, listener: int, token: int = ..., *, multishot: bool = ...,
               flags: int = ...) -> None: ...
    def connect(self, addr: Address, token: int = ..., *, flags: int = ...) -> None: ...
    def local_connect(self, path: Path, token: int = ..., *, flags: int = ...) -> None: ...
    def recv(self, h: int, buf: WritableBuffer, token: int = ...) -> None: ...
    def recv_pool(self, h: int, pool: int, token: int = ..., *, multishot: bool = ...,
                  flags: int = ...) -> None: ...
    def send(self, h: int, data: ReadableBuffer, token: int = ...) -> None: ...
    def sendv(self, h: int, buffers: Sequence[ReadableBuffer], token: int = ...) -> None: ...
    def sendto(self, h: int, data: ReadableBuffer, addr: Address, token: int = ...) -> None: ...
    def recvfrom(self, h: int, buf: WritableBuffer, token: int = ...) -> None: ...
    def shutdown(self, h: int, token: int = ...) -> None: ...
    def close_handle(self, h: int, token: int = ...) -> None: ...
    def open(self, path: Path, flags: Union[str, int] = ..., mode: int = ...,
             token: int = ...) -> None: ...
    def read(self, h: int, buf: WritableBuffer, offset: int = ..., token: int = ...) -> None: ...
    def write(self, h: int, data: ReadableBuffer, offset: int = ..., token: int = ...) -> None: ...
    def fsync(self, h: int, token: int = ...) -> None: ...
    def timeout(self, seconds: float, token: int = ...) -> None: ...
    def timeout_ns(self, ns: int, token: int = ...) -> None: ...
    def timeout_at(self, deadline_ns: int, token: int = ...) -> None: ...
    def cancel(self, target: int, token: int = ...) -> None: ...
    def resolve(self, host: str, service: Union[str, int, None] = ..., token: int = ..., *,
                flags: int = ..., max: int = ..., family: Optional[int] = ...) -> None: ...
    def pool_new(self, count: int, size: int) -> int: ...
    def pool_read(self, pool: int, buf_id: int, length: Optional[int] = ...) -> bytes: ...
    def buf_release(self, pool: int, buf_id: int) -> None: ...
    def sockname(self, h: int) -> Address: ...
    def peername(self, h: int) -> Address: ...
    def setopt(self, h: int, opt: int, value: Union[int, bool]) -> None: ...
    def adopt(self, fd: Any, kind: int) -> int: ...
    def os_handle(self, h: int) -> int: ...
    def pipe(self) -> Tuple[int, int]: ...
    def spawn(self, args: Sequence[Union[str, bytes]], *, file: Optional[str] = ...,
              stdin: Any = ..., stdout: Any = ..., stderr: Any = ...,
              env: Optional[Union[Mapping[str, str], Sequence[str]]] = ...,
              cwd: Optional[str] = ..., search_path: Optional[bool] = ...,
              new_session: bool = ...) -> "Process": ...
    def process_wait(self, process: int, token: int = ...) -> None: ...
    def kill(self, process: int, signum: int) -> None: ...
    def process_pid(self, process: int) -> int: ...

class Process(Tuple[int, int, int, int]):
    def __new__(cls, handle: int, stdin: int = ..., stdout: int = ...,
                stderr: int = ...) -> "Process": ...
    @property
    def handle(self) -> int: ...
    @property
    def stdin(self) -> int: ...
    @property
    def stdout(self) -> int: ...
    @property
    def stderr(self) -> int: ...

def exit_code(result: int) -> Optional[int]: ...
def term_signal(result: int) -> Optional[int]: ...
