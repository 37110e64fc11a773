/* muelle-monitor: the small native tail of a container's monitor (services/shim/monitor.py).

   The Python monitor comes warm from the shim's fork server and runs the container's
   `create` in-process (the fast run path). A container that is still running after a
   moment is then handed to this program by execve: same pid, same session, still the
   child subreaper (kept across execve), the container's stdout/stderr pipes inherited.
   What a sleeping container costs from then on is this process: ~0.1 MiB PSS and ~1.3 MiB
   RSS instead of a Python interpreter's 4.5 / 16.

   It does what monitor.run does after `create`, the same way:
   - pump the pipes into the json-file log (services/shim/logs.py's LogWriter: lines split
     at \n and at 16 KiB, JSON as Python's json.dumps writes it (ASCII, \uXXXX; bytes that
     are not UTF-8 as the lone surrogates \udc80-\udcff of surrogateescape), rotation past
     --log-max-size keeping --log-max-files files, a failed write drops its entries whole
     and cuts the file back to its last whole line);
   - reap every child; note init's wait status; after init's exit, drain the pipes until
     EOF or DRAIN_GRACE seconds without output;
   - a container with a terminal (-t): its pty master (--master-fd) is its stdout, and the
     resizes its clients send are TIOCSWINSZ on it;
   - a container with -i or -t: the stdin relay of services/shim/stdin.py, carried on from
     where Python froze it: the listening socket at --stdin-socket, an attached client's
     connection, its unfinished frame and the bytes the container has not read yet. Frames
     (4-byte big-endian length; top bit: a JSON control frame {"resize": [rows, cols]};
     empty: the client's EOF, which closes stdin with --stdin-once) go into stdin (a pipe
     or the pty master), non-blocking: a client is read only once the container took what
     came before, and the log pump never waits for it. Such logs are --unbuffered (a
     prompt shows before its line ends);
   - read oom_kill from the memory cgroup (v1 and v2) before the runtime's delete;
   - under the delete lock: status.json atomically (status.spare renamed in when the disk
     is full), then fork a child that holds the lock and runs `<runtime> delete`.

   Usage (all flags required but --partial-*, --log-*):
     muelle-monitor --dir DIR --init-pid N --stdout-fd N --stderr-fd N --cgroup PATH
                    [--log-max-size N] [--log-max-files N]
                    [--partial-stdout HEX] [--partial-stderr HEX] [--master-fd N]
                    [--unbuffered] [--stdin-socket PATH --stdin-listen-fd N
                    --stdin-conn-fd N --stdin-fd N --stdin-held-fd N --stdin-inbuf-len N
                    --stdin-once --stdin-close-after] -- DELETE ARGV...
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENTRY (16 * 1024)
#define DRAIN_GRACE_MS 2000
#define LOG_MODE 0640

static const char *dir;

/* -- small helpers ------------------------------------------------------------------ */

static char *path_in(const char *name) {
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static void rfc3339_nano(char out[40]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

/* A diagnostic line in monitor.log, like monitor.log(); lost, not fatal, on a full disk. */
static void note(const char *fmt, ...) {
    char stamp[40], line[8192];
    rfc3339_nano(stamp);
    int n = snprintf(line, sizeof line, "%s ", stamp);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path_in("monitor.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, line, n) < 0) { /* full disk: lost */ }
        close(fd);
    }
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* -- the json-file log ------------------------------------------------------------------ */

struct buf { char *p; size_t len, cap; };

static void put(struct buf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { note("out of memory"); _exit(2); }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void put_u(struct buf *b, unsigned v) {
    char tmp[16];
    snprintf(tmp, sizeof tmp, "\\u%04x", v & 0xffff);
    put(b, tmp, 6);
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7), 0 if none. */
static int utf8_len(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    unsigned lo = 0x80, hi = 0xbf, v;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; v = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3; v = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no encoded surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4; v = c & 0x07;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        unsigned d = s[i];
        if (d < lo || d > hi) return 0;
        lo = 0x80; hi = 0xbf;
        v = (v << 6) | (d & 0x3f);
    }
    *cp = v;
    return len;
}

/* data as a JSON string, as Python's json.dumps (ensure_ascii) writes
   data.decode("utf-8", "surrogateescape"). */
static void put_json_string(struct buf *b, const unsigned char *s, size_t n) {
    put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned cp;
        int len = utf8_len(s + i, n - i, &cp);
        if (!len) { put_u(b, 0xdc00 | s[i]); i++; continue; }
        i += (size_t)len;
        switch (cp) {
        case '"': put(b, "\\\"", 2); continue;
        case '\\': put(b, "\\\\", 2); continue;
        case '\n': put(b, "\\n", 2); continue;
        case '\r': put(b, "\\r", 2); continue;
        case '\t': put(b, "\\t", 2); continue;
        case '\b': put(b, "\\b", 2); continue;
        case '\f': put(b, "\\f", 2); continue;
        }
        if (cp >= 0x20 && cp <= 0x7e) { char ch = (char)cp; put(b, &ch, 1); }
        else if (cp < 0x10000) put_u(b, cp);
        else { cp -= 0x10000; put_u(b, 0xd800 | (cp >> 10)); put_u(b, 0xdc00 | (cp & 0x3ff)); }
    }
    put(b, "\"", 1);
}

static struct {
    const char *path;
    long long max_size;
    int max_files;
    int fd;
    long long size;
    struct buf pending;
    int pending_lines;
    long dropped;
    int error;
} lw;

static int open_log(int truncate) {
    int fd = open(lw.path, O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND, LOG_MODE);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 07777 & ~LOG_MODE))
        fchmod(fd, st.st_mode & 07777 & LOG_MODE);
    if (truncate && ftruncate(fd, 0) != 0) { /* as Python: best effort */ }
    return fd;
}

static void lw_flush(void) {
    if (!lw.pending.len) return;
    long long good = lw.size - (long long)lw.pending.len;
    if (write_all(lw.fd, lw.pending.p, lw.pending.len) != 0) {
        lw.error = errno;
        if (ftruncate(lw.fd, good) != 0) { /* nothing better to do */ }
        lw.size = good;
        lw.dropped += lw.pending_lines;
    }
    lw.pending.len = 0;
    lw.pending_lines = 0;
}

static void lw_rotate(void) {
    close(lw.fd);
    int truncate = lw.max_files == 1;
    if (!truncate) {
        char older[4200], newer[4200];
        for (int n = lw.max_files - 1; n > 0; n--) {
            if (n > 1) snprintf(older, sizeof older, "%s.%d", lw.path, n - 1);
            else snprintf(older, sizeof older, "%s", lw.path);
            snprintf(newer, sizeof newer, "%s.%d", lw.path, n);
            if (access(older, F_OK) == 0) rename(older, newer);
        }
    }
    lw.fd = open_log(truncate);
    lw.size = 0;
}

static void lw_emit(const char *stream, const unsigned char *data, size_t n) {
    struct buf line = {0};
    char stamp[40];
    put(&line, "{\"log\": ", 8);
    put_json_string(&line, data, n);
    put(&line, ", \"stream\": \"", 13);
    put(&line, stream, strlen(stream));
    put(&line, "\", \"time\": \"", 12);
    rfc3339_nano(stamp);
    put(&line, stamp, strlen(stamp));
    put(&line, "\"}\n", 3);
    if (lw.max_size && lw.size && lw.size + (long long)line.len > lw.max_size) {
        lw_flush();
        lw_rotate();
    }
    put(&lw.pending, line.p, line.len);
    lw.pending_lines++;
    lw.size += (long long)line.len;
    free(line.p);
}

struct stream { const char *name; struct buf partial; };

static void lw_write(struct stream *s, const unsigned char *data, size_t n) {
    put(&s->partial, (const char *)data, n);
    unsigned char *buf = (unsigned char *)s->partial.p;
    size_t len = s->partial.len, at = 0;
    for (;;) {
        unsigned char *nl = memchr(buf + at, '\n', len - at);
        size_t pos = nl ? (size_t)(nl - (buf + at)) : 0;
        if (!nl || pos >= MAX_ENTRY) {
            if (len - at >= MAX_ENTRY) {
                lw_emit(s->name, buf + at, MAX_ENTRY);
                at += MAX_ENTRY;
                continue;
            }
            break;
        }
        lw_emit(s->name, buf + at, pos + 1);
        at += pos + 1;
    }
    memmove(buf, buf + at, len - at);
    s->partial.len = len - at;
    lw_flush();
}

static void lw_flush_partial(struct stream *streams, int count) {
    for (int i = 0; i < count; i++) {
        if (streams[i].partial.len)
            lw_emit(streams[i].name, (unsigned char *)streams[i].partial.p, streams[i].partial.len);
        streams[i].partial.len = 0;
    }
    lw_flush();
}

static void unhex(struct buf *b, const char *hex) {
    size_t n = strlen(hex);
    for (size_t i = 0; i + 1 < n; i += 2) {
        char pair[3] = {hex[i], hex[i + 1], 0};
        char ch = (char)strtoul(pair, NULL, 16);
        put(b, &ch, 1);
    }
}

/* -- children ------------------------------------------------------------------------- */

/* Reap every exited child; 1 and *status set if init was among them. */
static int reap(pid_t init, int *status) {
    int found = 0;
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return found;
        if (pid == init) { *status = st; found = 1; }
    }
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- the stdin relay (services/shim/stdin.py's StdinRelay, step for step) ----------------- */

#define CONTROL 0x80000000u
#define MAX_CONTROL 4096

static struct {
    const char *path;         /* the socket's path, removed at the end */
    int listen, conn;         /* the listening socket; the attached client (-1: none) */
    int in;                   /* the container's stdin: a pipe or the pty master (-1: closed) */
    int master;               /* the pty master, for resizes (-1: no terminal) */
    int once, close_after;    /* stdin_once; its EOF came, close stdin once pending is out */
    struct buf pending;       /* bytes for stdin the container has not read yet */
    unsigned char head[4];    /* the current frame: its header so far, */
    int head_len;
    uint32_t left;            /* then how many of its bytes are still to come */
    int control;              /* and whether it is a control frame (kept in ctl) */
    struct buf ctl;
} rl = {.listen = -1, .conn = -1, .in = -1, .master = -1};

static void set_nonblocking(int fd) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void close_stdin(void) {
    rl.close_after = 0;
    rl.pending.len = 0;
    if (rl.in >= 0) close(rl.in);
    rl.in = -1;
}

/* The client left (a detach) or is done: what it had half sent is dropped. */
static void drop_client(void) {
    if (rl.conn >= 0) close(rl.conn);
    rl.conn = -1;
    rl.head_len = 0;
    rl.left = 0;
    rl.control = 0;
    rl.ctl.len = 0;
}

static void end_of_input(void) {
    drop_client();
    if (rl.once) rl.close_after = 1;
}

/* {"resize": [rows, cols]}: as json.loads + int() would read the two numbers. */
static void apply_control(void) {
    put(&rl.ctl, "", 1);
    const char *key = strstr(rl.ctl.p, "\"resize\"");
    const char *open = key ? strchr(key, '[') : NULL;
    int rows, cols;
    if (!open || sscanf(open + 1, " %d , %d ]", &rows, &cols) != 2) return;
    if (rl.master >= 0 && rows > 0 && cols > 0) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ioctl(rl.master, TIOCSWINSZ, &ws);  /* the kernel sends SIGWINCH to its foreground */
    }
}

/* Frames from the client: data into pending, controls applied; returns at its EOF. */
static void frames(const unsigned char *p, size_t n) {
    while (n) {
        if (rl.head_len < 4) {
            rl.head[rl.head_len++] = *p++;
            n--;
            if (rl.head_len < 4) continue;
            uint32_t size = (uint32_t)rl.head[0] << 24 | (uint32_t)rl.head[1] << 16 |
                            (uint32_t)rl.head[2] << 8 | rl.head[3];
            rl.control = (size & CONTROL) != 0;
            rl.left = size & ~CONTROL;
            rl.ctl.len = 0;
            if (!rl.control && !rl.left) { end_of_input(); return; }
        }
        size_t take = n < rl.left ? n : rl.left;
        if (rl.control) {
            if (rl.ctl.len + take <= MAX_CONTROL) put(&rl.ctl, (const char *)p, take);
        } else if (rl.in >= 0) {
            put(&rl.pending, (const char *)p, take);
        }  /* else: stdin not open (-t without -i) or closed: dropped */
        p += take;
        n -= take;
        rl.left -= (uint32_t)take;
        if (!rl.left) {
            if (rl.control) apply_control();
            rl.head_len = 0;
            rl.control = 0;
        }
    }
}

/* Whatever the relay can do now without blocking (StdinRelay._step). */
static void relay_step(void) {
    if (rl.pending.len && rl.in >= 0) {
        ssize_t k = write(rl.in, rl.pending.p, rl.pending.len);
        if (k > 0) {
            memmove(rl.pending.p, rl.pending.p + k, rl.pending.len - (size_t)k);
            rl.pending.len -= (size_t)k;
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
            rl.pending.len = 0;  /* the container closed its stdin (EPIPE): as its EOF */
            end_of_input();
        }
    }
    if (!rl.pending.len && rl.close_after) close_stdin();
    if (rl.listen >= 0 && rl.conn < 0)
        rl.conn = accept4(rl.listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (rl.conn >= 0 && !rl.pending.len) {
        unsigned char data[65536];
        ssize_t k = read(rl.conn, data, sizeof data);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (k <= 0) { drop_client(); return; }  /* left without an EOF: a detach */
        frames(data, (size_t)k);
    }
}

/* The relay's fds into a poll set (StdinRelay._interest); returns how many. */
static int relay_interest(struct pollfd *p) {
    int n = 0;
    if (rl.pending.len && rl.in >= 0) p[n++] = (struct pollfd){.fd = rl.in, .events = POLLOUT};
    else if (rl.conn >= 0) p[n++] = (struct pollfd){.fd = rl.conn, .events = POLLIN};
    if (rl.listen >= 0 && rl.conn < 0)
        p[n++] = (struct pollfd){.fd = rl.listen, .events = POLLIN};
    return n;
}

static void relay_close(void) {
    if (rl.listen < 0) return;
    close(rl.listen);
    rl.listen = -1;
    if (rl.path) unlink(rl.path);
    drop_client();
    close_stdin();
}

/* -- the pump ------------------------------------------------------------------------------ */

static int unbuffered;  /* -i/-t: every read is logged at once, an unfinished line too */

/* Copy the pipes (and the pty master) to the log until EOF and init is reaped, relaying
   stdin meanwhile; init's wait status, -1 if lost. fds: stdout, stderr, master; the master
   is the stdout stream.

   While init runs, the monitor sleeps until something happens: output, the relay's
   sockets, init's exit (its pidfd), or another child's exit (SIGCHLD, read from a
   signalfd: a subreaper inherits orphans, which must not stay zombies). A timed wake-up
   every 100 ms cost 1000 sleeping containers ~17% of a CPU. Only without a pidfd or a
   signalfd, and while the pipes drain after init's exit, does it poll. SIGCHLD is blocked
   for the signalfd in here only: the caller's mask is back before the runtime's delete is
   forked. */
static int pump(int fds[3], struct stream *streams, pid_t init) {
    int open_fds = 0;
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) { open_fds++; set_nonblocking(fds[i]); }
    int pidfd = (int)syscall(SYS_pidfd_open, init, 0);
    sigset_t chld, saved;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &saved);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    int status = 0, have_status = 0;
    long long exited_at = 0;
    static unsigned char data[65536];
    /* a child that exited before SIGCHLD was blocked left no signal to wake us */
    if (reap(init, &status)) have_status = 1;
    while (open_fds || !have_status) {
        /* Whatever the relay can do without an event first: the Python relay may have been
           frozen between two steps (an EOF taken, stdin not yet closed), and the poll below
           may sleep with no timeout. */
        relay_step();
        /* 0-2: the output fds, 3: init's pidfd, 4: SIGCHLD's signalfd, then the relay's */
        struct pollfd p[8];
        for (int i = 0; i < 3; i++) p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        p[3] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        p[4] = (struct pollfd){.fd = sfd, .events = POLLIN};
        int count = 5 + relay_interest(p + 5);
        int timeout = (!have_status && pidfd >= 0 && sfd >= 0) ? -1
                      : (open_fds || pidfd >= 0) ? 100 : 10;
        int n = poll(p, (nfds_t)count, timeout);
        if (n < 0) n = 0;  /* EINTR */
        if (sfd >= 0 && p[4].revents) {  /* a child exited: drained here, reaped below */
            struct signalfd_siginfo info;
            while (read(sfd, &info, sizeof info) == (ssize_t)sizeof info) {}
        }
        if (pidfd >= 0 && p[3].revents) {
            close(pidfd);
            pidfd = -1;
        }
        for (int i = 0; i < 3; i++) {
            if (fds[i] < 0 || !p[i].revents) continue;
            ssize_t k = read(fds[i], data, sizeof data);
            if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            struct stream *s = &streams[i == 2 ? 0 : i];
            if (k > 0) {
                lw_write(s, data, (size_t)k);
                if (unbuffered) lw_flush_partial(streams, 2);
            } else {  /* EOF (or EIO from a pty master): this stream is done */
                close(fds[i]);
                fds[i] = -1;
                open_fds--;
            }
        }
        relay_step();
        if (!have_status && reap(init, &status)) have_status = 1;
        if (!have_status && kill(init, 0) != 0 && errno == ESRCH) {
            status = -1;  /* not our child (should not happen to a subreaper) */
            have_status = 1;
        }
        if (have_status) {
            if (!exited_at) exited_at = now_ms();
            if (n == 0 && now_ms() - exited_at > DRAIN_GRACE_MS) break;
        }
    }
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (pidfd >= 0) close(pidfd);
    if (sfd >= 0) close(sfd);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return status;
}

static int exit_code(int status) {
    if (status < 0) return 255;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

/* -- OOM and the exit status ------------------------------------------------------------ */

static int oom_in(const char *file) {
    FILE *f = fopen(file, "re");
    if (!f) return -1;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        long long v;
        if (sscanf(line, "oom_kill %lld", &v) == 1 && v > 0) found = 1;
    }
    fclose(f);
    return found;
}

static int oom_killed(const char *cgroup) {
    while (*cgroup == '/') cgroup++;
    char rel[4096];
    snprintf(rel, sizeof rel, "%s", cgroup);
    size_t n = strlen(rel);
    while (n && rel[n - 1] == '/') rel[--n] = 0;
    char file[4200];
    snprintf(file, sizeof file, "/sys/fs/cgroup/memory/%s/memory.oom_control", rel);
    int v1 = oom_in(file);
    if (v1 >= 0) return v1;
    snprintf(file, sizeof file, "/sys/fs/cgroup/%s/memory.events", rel);
    return oom_in(file) > 0;
}

/* text over target's own blocks, padded with spaces to its old size (store._overwrite). */
static int overwrite(const char *target, const char *text, size_t n, const char *rename_to) {
    int fd = open(target, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < n) { close(fd); return 0; }
    char *padded = malloc((size_t)st.st_size);
    if (!padded) { close(fd); return 0; }
    memcpy(padded, text, n);
    memset(padded + n, ' ', (size_t)st.st_size - n);
    int ok = pwrite(fd, padded, (size_t)st.st_size, 0) == st.st_size;
    free(padded);
    close(fd);
    if (ok && rename_to) ok = rename(target, rename_to) == 0;
    return ok;
}

static int write_status(const char *text) {
    char *final = path_in("status.json");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.status.json.tmp%d", dir, getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && write_all(fd, text, strlen(text)) == 0) {
        close(fd);
        return rename(tmp, final) == 0 ? 0 : -1;
    }
    int err = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    if (err != ENOSPC && err != EDQUOT) return -1;
    if (overwrite(final, text, strlen(text), NULL)) return 0;
    return overwrite(path_in("status.spare"), text, strlen(text), final) ? 0 : -1;
}

/* -- the runtime's delete ------------------------------------------------------------------ */

static void run_delete(char **argv) {
    char errpath[] = "/tmp/muelle-monitor-delete-XXXXXX";
    int err = mkostemp(errpath, O_CLOEXEC);
    if (err >= 0) unlink(errpath);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(err >= 0 ? err : devnull, 1);
        dup2(err >= 0 ? err : devnull, 2);
        if (chdir(dir) != 0) _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char text[2048] = "";
        ssize_t k = err >= 0 ? pread(err, text, sizeof text - 1, 0) : 0;
        text[k > 0 ? k : 0] = 0;
        char *end = text + strlen(text);
        while (end > text && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
        note("delete failed: %s", text[0] ? text : "exited with an error");
    }
    if (err >= 0) close(err);
}

/* -- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"init-pid", required_argument, 0, 'p'},
        {"stdout-fd", required_argument, 0, 'o'}, {"stderr-fd", required_argument, 0, 'e'},
        {"cgroup", required_argument, 0, 'c'}, {"log-max-size", required_argument, 0, 's'},
        {"log-max-files", required_argument, 0, 'f'},
        {"partial-stdout", required_argument, 0, 'O'},
        {"partial-stderr", required_argument, 0, 'E'}, {"master-fd", required_argument, 0, 'm'},
        {"unbuffered", no_argument, 0, 'u'}, {"stdin-socket", required_argument, 0, 'S'},
        {"stdin-listen-fd", required_argument, 0, 'L'},
        {"stdin-conn-fd", required_argument, 0, 'C'}, {"stdin-fd", required_argument, 0, 'i'},
        {"stdin-held-fd", required_argument, 0, 'H'},
        {"stdin-inbuf-len", required_argument, 0, 'I'},
        {"stdin-once", no_argument, 0, '1'}, {"stdin-close-after", no_argument, 0, 'A'},
        {0, 0, 0, 0}};
    pid_t init = 0;
    int fds[3] = {-1, -1, -1};
    int held = -1;         /* a memfd: the frame Python had half read, then pending bytes */
    size_t inbuf_len = 0;
    const char *cgroup = NULL, *partial[2] = {"", ""};
    lw.max_files = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': init = (pid_t)atoi(optarg); break;
        case 'o': fds[0] = atoi(optarg); break;
        case 'e': fds[1] = atoi(optarg); break;
        case 'c': cgroup = optarg; break;
        case 's': lw.max_size = atoll(optarg); break;
        case 'f': lw.max_files = atoi(optarg) > 1 ? atoi(optarg) : 1; break;
        case 'O': partial[0] = optarg; break;
        case 'E': partial[1] = optarg; break;
        case 'm': fds[2] = rl.master = atoi(optarg); break;
        case 'u': unbuffered = 1; break;
        case 'S': rl.path = optarg; break;
        case 'L': rl.listen = atoi(optarg); break;
        case 'C': rl.conn = atoi(optarg); break;
        case 'i': rl.in = atoi(optarg); break;
        case 'H': held = atoi(optarg); break;
        case 'I': inbuf_len = (size_t)atoll(optarg); break;
        case '1': rl.once = 1; break;
        case 'A': rl.close_after = 1; break;
        default: return 2;
        }
    }
    if (!dir || init <= 0 || !cgroup || optind >= argc) {
        fprintf(stderr, "usage: muelle-monitor --dir DIR --init-pid N --stdout-fd N "
                        "--stderr-fd N --cgroup PATH [--log-max-size N] [--log-max-files N] "
                        "-- DELETE ARGV...\n");
        return 2;
    }
    char **delete_argv = argv + optind;
    /* Not for the delete's child; a write to a stdin nobody reads is EPIPE, not death. */
    int inherited[] = {fds[0], fds[1], fds[2], rl.listen, rl.conn, rl.in};
    for (size_t i = 0; i < sizeof inherited / sizeof *inherited; i++)
        if (inherited[i] >= 0) fcntl(inherited[i], F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    set_nonblocking(rl.listen);
    set_nonblocking(rl.conn);
    set_nonblocking(rl.in);
    if (held >= 0) {
        struct buf all = {0};
        char chunk[65536];
        ssize_t k;
        off_t at = 0;
        while ((k = pread(held, chunk, sizeof chunk, at)) > 0) {
            put(&all, chunk, (size_t)k);
            at += k;
        }
        close(held);
        if (inbuf_len > all.len) inbuf_len = all.len;
        put(&rl.pending, all.p + inbuf_len, all.len - inbuf_len);
        frames((unsigned char *)all.p, inbuf_len);  /* after pending: the order they came */
        free(all.p);
    }
    lw.path = path_in("container.log");
    lw.path = strdup(lw.path);
    lw.fd = open_log(0);
    struct stat st;
    lw.size = lw.fd >= 0 && fstat(lw.fd, &st) == 0 ? st.st_size : 0;
    struct stream streams[2] = {{"stdout", {0}}, {"stderr", {0}}};
    for (int i = 0; i < 2; i++) unhex(&streams[i].partial, partial[i]);

    int status = pump(fds, streams, init);
    relay_close();
    lw_flush_partial(streams, 2);
    if (lw.fd >= 0) close(lw.fd);
    if (lw.dropped) note("dropped %ld log entries: %s", lw.dropped, strerror(lw.error));
    int oom = oom_killed(cgroup);

    int lock = open(path_in("delete.lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock >= 0) flock(lock, LOCK_EX);
    int ignored;
    reap(0, &ignored);
    char stamp[40], text[512];
    rfc3339_nano(stamp);
    snprintf(text, sizeof text,
             "{\"pid\": %d, \"exit_code\": %d, \"oom_killed\": %s, \"finished_at\": \"%s\", "
             "\"error\": \"%s\"}",
             (int)init, exit_code(status), oom ? "true" : "false", stamp,
             status >= 0 ? "" : "exit status lost");
    if (write_status(text) != 0) note("could not record the exit status: %s", strerror(errno));
    note("container exited, status %d", status);
    pid_t child = fork();
    if (child == 0) {  /* holds the lock (its copy of the fd) until the delete is done */
        if (lock >= 0) {
            char pid[24];
            int n = snprintf(pid, sizeof pid, "%d", getpid());
            if (ftruncate(lock, 0) == 0 && pwrite(lock, pid, n, 0) != n) { /* full disk */ }
        }
        run_delete(delete_argv);
        reap(0, &ignored);
        _exit(0);
    }
    if (child < 0) {
        note("fork for the delete failed (%s): deleting in the monitor", strerror(errno));
        run_delete(delete_argv);
    }
    if (lock >= 0) close(lock);
    return 0;
}
