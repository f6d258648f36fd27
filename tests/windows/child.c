/*
 * The child program of the iocp/process-* tests (Windows has no /bin/sh to run scripts
 * with). argv[1] is a script of commands separated by ';', run in order:
 *   exit N          exit with code N
 *   sleep MS        sleep MS milliseconds
 *   echo TEXT       TEXT and a newline on stdout (on stderr when TEXT ends in " >&2")
 *   put TEXT        TEXT on stdout, no newline
 *   lines N         "line 0\n" ... "line N-1\n" on stdout
 *   cat             stdin to stdout, to the end of stdin
 *   getenv NAME     the value of NAME on stdout (nothing if unset)
 *   test-env N V    exit 1 unless variable N has value V
 *   pwd             the current directory on stdout
 *   mark PATH       write "done" to the file PATH
 *   args            every argument after the script on a line of its own (UTF-8)
 *   no-handle N     exit 4 if handle value N is an inheritable handle here (one that
 *                   came from the parent: what the child opens itself is not inheritable)
 *   on-break N      from now on, Ctrl-Break (a console control event) exits with code N
 * The arguments are parsed from the UTF-16 command line (CommandLineToArgvW), so that what
 * arrives is what the Microsoft C runtime rules make of ioq_spawn's quoting.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <shellapi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out(HANDLE h, const char *s, size_t n)
{
    DWORD w;
    while (n > 0) {
        if (!WriteFile(h, s, (DWORD)n, &w, NULL))
            exit(120);
        s += w;
        n -= w;
    }
}

static char *utf8(const wchar_t *w)
{
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    char *s = malloc((size_t)n);
    if (!s)
        exit(121);
    WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
    return s;
}

static char *env_value(const char *name)
{
    static wchar_t buf[32768];
    wchar_t wname[256];
    MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 256);
    DWORD n = GetEnvironmentVariableW(wname, buf, 32768);
    if (n == 0 || n >= 32768)
        return NULL;
    return utf8(buf);
}

static UINT break_code;

static BOOL WINAPI on_ctrl(DWORD type)
{
    if (type != CTRL_BREAK_EVENT)
        return FALSE;
    ExitProcess(break_code);
    return TRUE;
}

static void run(char *cmd, int argc, wchar_t **argv)
{
    HANDLE so = GetStdHandle(STD_OUTPUT_HANDLE), se = GetStdHandle(STD_ERROR_HANDLE);
    char *arg;
    while (*cmd == ' ')
        cmd++;
    arg = strchr(cmd, ' ');
    if (arg)
        *arg++ = 0;
    else
        arg = cmd + strlen(cmd);
    if (strcmp(cmd, "exit") == 0) {
        ExitProcess((UINT)strtoul(arg, NULL, 10));
    } else if (strcmp(cmd, "sleep") == 0) {
        Sleep((DWORD)strtoul(arg, NULL, 10));
    } else if (strcmp(cmd, "echo") == 0 || strcmp(cmd, "put") == 0) {
        size_t n = strlen(arg);
        HANDLE h = so;
        if (n >= 4 && strcmp(arg + n - 4, " >&2") == 0) {
            n -= 4;
            h = se;
        }
        out(h, arg, n);
        if (cmd[0] == 'e')
            out(h, "\n", 1);
    } else if (strcmp(cmd, "lines") == 0) {
        unsigned long n = strtoul(arg, NULL, 10);
        char line[32];
        for (unsigned long i = 0; i < n; i++) {
            int k = snprintf(line, sizeof line, "line %lu\n", i);
            out(so, line, (size_t)k);
        }
    } else if (strcmp(cmd, "cat") == 0) {
        HANDLE si = GetStdHandle(STD_INPUT_HANDLE);
        char buf[65536];
        DWORD n;
        while (ReadFile(si, buf, sizeof buf, &n, NULL) && n > 0)
            out(so, buf, n);
    } else if (strcmp(cmd, "getenv") == 0) {
        char *v = env_value(arg);
        if (v)
            out(so, v, strlen(v));
    } else if (strcmp(cmd, "test-env") == 0) {
        char *val = strchr(arg, ' '), *v;
        if (!val)
            ExitProcess(2);
        *val++ = 0;
        v = env_value(arg);
        if (!v || strcmp(v, val) != 0)
            ExitProcess(1);
    } else if (strcmp(cmd, "pwd") == 0) {
        wchar_t dir[MAX_PATH];
        char *s;
        GetCurrentDirectoryW(MAX_PATH, dir);
        s = utf8(dir);
        out(so, s, strlen(s));
    } else if (strcmp(cmd, "mark") == 0) {
        HANDLE f = CreateFileA(arg, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
        if (f == INVALID_HANDLE_VALUE)
            ExitProcess(3);
        out(f, "done\n", 5);
        CloseHandle(f);
    } else if (strcmp(cmd, "args") == 0) {
        for (int i = 2; i < argc; i++) {
            char *s = utf8(argv[i]);
            out(so, s, strlen(s));
            out(so, "\n", 1);
        }
    } else if (strcmp(cmd, "no-handle") == 0) {
        HANDLE h = (HANDLE)(uintptr_t)strtoull(arg, NULL, 10);
        DWORD f;
        if (GetHandleInformation(h, &f) && (f & HANDLE_FLAG_INHERIT))
            ExitProcess(4);
    } else if (strcmp(cmd, "on-break") == 0) {
        break_code = (UINT)strtoul(arg, NULL, 10);
        if (!SetConsoleCtrlHandler(on_ctrl, TRUE))
            ExitProcess(5);
    } else if (*cmd) {
        ExitProcess(126); /* unknown command */
    }
}

int main(void)
{
    int argc = 0;
    wchar_t **argv = CommandLineToArgvW(GetCommandLineW(), &argc);
    char *script, *p, *next;
    if (!argv || argc < 2)
        return 125;
    script = utf8(argv[1]);
    for (p = script; p; p = next) {
        next = strchr(p, ';');
        if (next)
            *next++ = 0;
        run(p, argc, argv);
    }
    return 0;
}
