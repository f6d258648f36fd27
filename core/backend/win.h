/*
 * Windows helpers shared by the OS layer (win.c) and the IOCP backend: Winsock start-up,
 * address conversion, overlapped socket creation, named-pipe names and error translation.
 */
#ifndef IOQ_WIN_H
#define IOQ_WIN_H

#include "backend.h"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include "sockaddr.h"

/* Win32 (GetLastError) or Winsock (WSAGetLastError) error -> IOQ_E*. */
int ioq__win_error_map(DWORD err);
/* WSAStartup once per process; 0 or IOQ_E*. */
int ioq__win_startup(void);

int ioq__win_family(uint16_t ioq_family);
/* An overlapped, non-inheritable, non-blocking socket; 0 or IOQ_E*. */
int ioq__win_socket(int family, int type, SOCKET *out);
bool ioq__win_is_socket(int64_t fd);

/* "\\.\pipe\<path>" as a fresh UTF-16 string for an ioq local path; NULL with *rc set. */
wchar_t *ioq__win_pipe_name(const char *path, int *rc);
/* A new overlapped server instance of a byte-mode pipe; 0 or IOQ_E*. */
int ioq__win_pipe_instance(const wchar_t *name, bool first, HANDLE *out);
/* The name of the listener pipe created by ioq__os_local_listen for fd (the caller owns
 * it now), or NULL. */
wchar_t *ioq__win_pipe_name_take(int64_t fd);

/* How a stream HANDLE (kind PIPE or TTY) is served: overlapped through the port, or with
 * blocking calls on a worker thread (a synchronous pipe, NUL, another character device),
 * a console's with ReadConsoleW/WriteConsoleW. */
#define IOQ__WIN_OVERLAPPED 0
#define IOQ__WIN_SYNC 1
#define IOQ__WIN_CONSOLE 2
int ioq__win_stream_class(HANDLE h);

#endif /* IOQ_WIN_H */
