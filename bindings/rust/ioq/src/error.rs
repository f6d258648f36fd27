use std::ffi::CStr;
use std::fmt;

use ioq_sys as sys;

/// An ioq error: one of the pinned negative `IOQ_E*` codes of the C ABI.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    code: i32,
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

macro_rules! codes {
    ($($name:ident = $sys:ident),* $(,)?) => {
        impl Error {
            $(pub const $name: Error = Error { code: sys::$sys };)*
        }
    };
}

codes! {
    INVAL = IOQ_EINVAL, BADHANDLE = IOQ_EBADHANDLE, NOMEM = IOQ_ENOMEM,
    CANCELED = IOQ_ECANCELED, TIMEDOUT = IOQ_ETIMEDOUT, CONNREFUSED = IOQ_ECONNREFUSED,
    CONNRESET = IOQ_ECONNRESET, CONNABORTED = IOQ_ECONNABORTED, PIPE = IOQ_EPIPE,
    ADDRINUSE = IOQ_EADDRINUSE, ADDRNOTAVAIL = IOQ_EADDRNOTAVAIL,
    NETUNREACH = IOQ_ENETUNREACH, HOSTUNREACH = IOQ_EHOSTUNREACH, MFILE = IOQ_EMFILE,
    NFILE = IOQ_ENFILE, NOENT = IOQ_ENOENT, ACCES = IOQ_EACCES, PERM = IOQ_EPERM,
    EXIST = IOQ_EEXIST, ISDIR = IOQ_EISDIR, NOTDIR = IOQ_ENOTDIR, NOSPC = IOQ_ENOSPC,
    IO = IOQ_EIO, NOBUFS = IOQ_ENOBUFS, MSGSIZE = IOQ_EMSGSIZE, NOTSUP = IOQ_ENOTSUP,
    BUSY = IOQ_EBUSY, NOTCONN = IOQ_ENOTCONN, NAMETOOLONG = IOQ_ENAMETOOLONG,
    NOTFOUND = IOQ_ENOTFOUND, AGAIN = IOQ_EAGAIN, NOSYS = IOQ_ENOSYS, FBIG = IOQ_EFBIG,
    ROFS = IOQ_EROFS, LOOP = IOQ_ELOOP, AFNOSUPPORT = IOQ_EAFNOSUPPORT,
    MISUSE = IOQ_EMISUSE, DESTADDRREQ = IOQ_EDESTADDRREQ, SHUTDOWN = IOQ_ESHUTDOWN,
    SRCH = IOQ_ESRCH, NOEXEC = IOQ_ENOEXEC, NOTTY = IOQ_ENOTTY,
    UNKNOWN = IOQ_EUNKNOWN,
}

impl Error {
    /// Wraps a code; values >= 0 are not errors and become `IOQ_EUNKNOWN`.
    pub fn from_code(code: i64) -> Error {
        if code < 0 && code >= i32::MIN as i64 {
            Error { code: code as i32 }
        } else {
            Error::UNKNOWN
        }
    }

    /// The pinned negative code (`IOQ_E*`).
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The constant's name without prefix, e.g. `"ECONNREFUSED"` (from `ioq_errname`).
    pub fn name(&self) -> &'static str {
        static_str(unsafe { sys::ioq_errname(self.code as i64) })
    }

    /// A sentence describing the error (from `ioq_strerror`).
    pub fn message(&self) -> &'static str {
        static_str(unsafe { sys::ioq_strerror(self.code as i64) })
    }
}

/// The library returns static storage for these strings.
pub(crate) fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

/// Turns a C return value into a `Result`.
pub(crate) fn check(rc: i64) -> Result<i64> {
    if rc < 0 {
        Err(Error::from_code(rc))
    } else {
        Ok(rc)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({} {})", self.code, self.name())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.name())
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match e {
            Error::NOENT => K::NotFound,
            Error::ACCES | Error::PERM => K::PermissionDenied,
            Error::CONNREFUSED => K::ConnectionRefused,
            Error::CONNRESET => K::ConnectionReset,
            Error::CONNABORTED => K::ConnectionAborted,
            Error::NOTCONN => K::NotConnected,
            Error::ADDRINUSE => K::AddrInUse,
            Error::ADDRNOTAVAIL => K::AddrNotAvailable,
            Error::PIPE => K::BrokenPipe,
            Error::EXIST => K::AlreadyExists,
            Error::AGAIN => K::WouldBlock,
            Error::INVAL => K::InvalidInput,
            Error::TIMEDOUT => K::TimedOut,
            Error::CANCELED => K::Interrupted,
            Error::NOTSUP => K::Unsupported,
            Error::NOMEM => K::OutOfMemory,
            _ => K::Other,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_messages() {
        let e = Error::from_code(-6);
        assert_eq!(e, Error::CONNREFUSED);
        assert_eq!(e.code(), -6);
        assert_eq!(e.name(), "ECONNREFUSED");
        assert!(!e.message().is_empty());
        assert!(e.to_string().contains("ECONNREFUSED"));
        assert_eq!(Error::from_code(5), Error::UNKNOWN);
        assert_eq!(Error::from_code(-1000).name(), "UNKNOWN");
        let io: std::io::Error = Error::CONNREFUSED.into();
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn every_pinned_code_has_its_name() {
        for (e, n) in [
            (Error::INVAL, "EINVAL"),
            (Error::BADHANDLE, "EBADHANDLE"),
            (Error::CANCELED, "ECANCELED"),
            (Error::SHUTDOWN, "ESHUTDOWN"),
            (Error::UNKNOWN, "EUNKNOWN"),
        ] {
            assert_eq!(e.name(), n);
        }
    }
}
