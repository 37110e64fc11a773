/* muelle-runtime: the native front of muelle's OCI runtime (services/runtime).

   Docker's containerd-shim and Podman's conmon call the runtime once per step of a
   container (create, start, state, kill, delete), each a fresh process. A Python
   interpreter costs ~25 ms to start and import a verb, several times runc's whole call,
   and more on a loaded host. This program IS the `muelle-runtime` command (make setup
   builds it over pip's script): it does the light verbs itself, reading and writing the
   state the Python runtime keeps (store.py), exactly as state.py, start.py, kill.py and
   delete.py do (same checks, messages, log lines and exit codes), and hands everything
   else to Python:
   - `create`, `run`, `exec` (the verbs that go into a container) are started from a
     sealed memfd copy of the interpreter, as sealed.ensure would re-execute them (same
     environment and seals; `-c BOOT` rather than `-m`, which costs runpy and
     importlib.util, ~4 ms), which saves the first of its two interpreters;
   - anything else, or anything this program does not fully understand (an option it
     does not know, an odd id, a path or state it would have to guess about, hooks, a
     container without a mount namespace, `kill --all`), is exec'd as
     `python -S -c BOOT ARGS`: services/runtime/main.py then answers as it always did.

   MUELLE_RUNTIME_FRONT=python hands every call to Python (tests compare both paths);
   MUELLE_RUNTIME_FRONT=native exits 3 instead of handing over (tests check the native
   path was taken). Built with -DMUELLE_PYTHON="venv python" -DMUELLE_ROOT="checkout".
*/
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MUELLE_PYTHON
#error "build with -DMUELLE_PYTHON='\"/path/to/venv/bin/python\"' (make setup does)"
#endif
#ifndef MUELLE_ROOT
#error "build with -DMUELLE_ROOT='\"/path/to/checkout\"' (make setup does)"
#endif

#define DEFAULT_ROOT "/run/muelle-runtime"
#define OCI_VERSION "1.0.2"
#define CGROUP_ROOT "/sys/fs/cgroup"
/* main.py's entry without `site` (as sealed.py runs it): the checkout replaces sys.path[0],
   which for -c is the caller's cwd (a bundle dir must never shadow a module). */
#define BOOT "import sys; sys.path[0] = '" MUELLE_ROOT "'; " \
             "from services.runtime.main import main; main()"

static int g_argc;
static char **g_argv;                    /* our command line, handed over unchanged */
static const char *root = DEFAULT_ROOT;  /* --root */
static const char *log_path;             /* --log */
static int log_json;                     /* --log-format json */
static int debug;                        /* --debug */
static int log_fd = -1;                  /* --log, opened as main.py does (append) */
static const char *cid;

/* -- handing over to Python ------------------------------------------------------- */

static const char *front_mode(void) {
    const char *mode = getenv("MUELLE_RUNTIME_FRONT");
    return mode ? mode : "";
}

static char **python_argv(const char *const *head, int nhead) {
    char **argv = calloc(nhead + g_argc, sizeof *argv);
    if (!argv) abort();
    for (int i = 0; i < nhead; i++) argv[i] = (char *)head[i];
    for (int i = 1; i < g_argc; i++) argv[nhead + i - 1] = g_argv[i];
    return argv;
}

/* The sealed start of create/run/exec: what sealed.ensure does, done before the first
   interpreter rather than by it. Returns only if the copy cannot be made (Python then
   tries again and reports why). */
static void exec_sealed(void) {
    static const int seals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    int fd = memfd_create("muelle-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int src = open(MUELLE_PYTHON, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || src < 0 || fstat(src, &st) < 0) goto fail;
    for (off_t done = 0; done < st.st_size;) {
        ssize_t sent = sendfile(fd, src, NULL, st.st_size - done);
        if (sent <= 0) goto fail;
        done += sent;
    }
    if (fcntl(fd, F_ADD_SEALS, seals) < 0) goto fail;
    close(src);
    src = -1;
    /* sealed.py's mark (our pid, which survives execve) and PYTHONPATH (the checkout:
       -S skips the venv's .pth files). */
    char mark[32], *path;
    snprintf(mark, sizeof mark, "%d", (int)getpid());
    const char *old = getenv("PYTHONPATH");
    if (asprintf(&path, "%s%s%s", MUELLE_ROOT, old && *old ? ":" : "",
                 old && *old ? old : "") < 0)
        abort();
    setenv("MUELLE_SEALED_EXEC", mark, 1);
    setenv("PYTHONPATH", path, 1);
    static const char *const head[] = {MUELLE_PYTHON, "-S", "-c", BOOT};
    fflush(NULL);
    fexecve(fd, python_argv(head, 4), environ);
    unsetenv("MUELLE_SEALED_EXEC");
    if (old) setenv("PYTHONPATH", old, 1); else unsetenv("PYTHONPATH");
fail:
    if (fd >= 0) close(fd);
    if (src >= 0) close(src);
}

static void __attribute__((noreturn)) hand_over(void) {
    if (strcmp(front_mode(), "native") == 0) {
        fprintf(stderr, "muelle-runtime front: not handled natively\n");
        exit(3);
    }
    if (log_fd >= 0) close(log_fd);
    static const char *const head[] = {MUELLE_PYTHON, "-S", "-c", BOOT};
    fflush(NULL);
    execv(MUELLE_PYTHON, python_argv(head, 4));
    fprintf(stderr, "muelle-runtime: cannot start %s: %s\n", MUELLE_PYTHON, strerror(errno));
    exit(1);
}

/* -- output: log lines and the one error line (log.py, main.py's _error) ---------- */

static void now_utc(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A string as Python's json.dumps writes it (ensure_ascii): UTF-8 becomes \uXXXX
   (surrogate pairs past U+FFFF), a byte that is not UTF-8 U+FFFD (decode "replace"). */
static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        unsigned cp = c;
        size_t len = 1;
        if (c >= 0x80) {
            len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
            cp = len == 4 ? c & 7 : len == 3 ? c & 15 : c & 31;
            for (size_t k = 1; k < len; k++) {
                if (i + k >= n || ((unsigned char)s[i + k] & 0xc0) != 0x80) { len = 0; break; }
                cp = cp << 6 | ((unsigned char)s[i + k] & 0x3f);
            }
            if (len == 0) { cp = 0xfffd; len = 1; }
        }
        i += len;
        if (cp == '"') fputs("\\\"", f);
        else if (cp == '\\') fputs("\\\\", f);
        else if (cp == '\n') fputs("\\n", f);
        else if (cp == '\r') fputs("\\r", f);
        else if (cp == '\t') fputs("\\t", f);
        else if (cp == '\b') fputs("\\b", f);
        else if (cp == '\f') fputs("\\f", f);
        else if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) fprintf(f, "\\u%04x", cp);
        else if (cp >= 0x10000) {
            cp -= 0x10000;
            fprintf(f, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else fputc(cp, f);
    }
    fputc('"', f);
}

/* One log line (log.py's render) if the level passes: info needs --log or --debug.
   `key` and its raw JSON value `val` (a number or a list of numbers) follow the
   container; logfmt quotes a value with a space as json.dumps of its text. */
static void log_info(const char *event, const char *key, const char *val) {
    if (!log_path && !debug) return;
    char stamp[32], *line;
    size_t size;
    now_utc(stamp);
    FILE *f = open_memstream(&line, &size);
    if (!f) return;
    if (log_json) {
        fputs("{\"event\": ", f);
        json_str(f, event, strlen(event));
        fprintf(f, ", \"container\": \"%s\"", cid);
        if (key) fprintf(f, ", \"%s\": %s", key, val);
        fprintf(f, ", \"level\": \"info\", \"time\": \"%s\"}\n", stamp);
    } else {
        fputs("level=info event=", f);
        if (strchr(event, ' ')) json_str(f, event, strlen(event)); else fputs(event, f);
        fprintf(f, " container=%s", cid);
        if (key) {
            fprintf(f, " %s=", key);
            if (strchr(val, ' ')) json_str(f, val, strlen(val)); else fputs(val, f);
        }
        fprintf(f, " time=%s\n", stamp);
    }
    fclose(f);
    if (write(log_fd >= 0 ? log_fd : 2, line, size) < 0) { /* as a lost log line: nothing */ }
    free(line);
}

/* The verb failed: main.py's _error (stderr, and the --log file for the shim), exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...) {
    char *msg, stamp[32];
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) abort();
    va_end(ap);
    now_utc(stamp);
    if (log_json) {
        fputs("{\"level\": \"error\", \"msg\": ", stderr);
        json_str(stderr, msg, strlen(msg));
        fprintf(stderr, ", \"time\": \"%s\"}\n", stamp);
    } else {
        fprintf(stderr, "%s\n", msg);
    }
    if (log_fd >= 0) {
        FILE *f = fdopen(log_fd, "a");
        if (f) {
            fputs("{\"level\": \"error\", \"msg\": ", f);
            json_str(f, msg, strlen(msg));
            fputs("}\n", f);
            fclose(f);
        }
    }
    exit(1);
}

/* -- the state (store.py) ------------------------------------------------------------ */

/* state.json as store.save writes it (json.dumps of the State tuple). Strings are kept as
   their JSON text, which json.dumps would write again unchanged. */
struct state {
    const char *id, *bundle, *created;      /* raw JSON strings, quotes included */
    size_t id_n, bundle_n, created_n;
    long long pid, start_time;
    char cgroups_path[PATH_MAX];              /* decoded (no escapes accepted) */
    const char *ann[64][2];                   /* annotations: raw key, raw value */
    size_t ann_n[64][2];
    int n_ann;
};

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

/* A JSON string with only the escapes json.dumps writes; its end, or NULL. */
static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) return NULL;
        if (*p != '\\') continue;
        p++;
        if (*p == 'u') {
            for (int k = 1; k <= 4; k++)
                if (!strchr("0123456789abcdef", p[k]) || !p[k]) return NULL;
            p += 4;
        } else if (!*p || !strchr("\"\\nrtbf", *p)) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *json_int(const char *p, long long *out) {
    char *end;
    errno = 0;
    if (!(*p == '-' || (*p >= '0' && *p <= '9'))) return NULL;
    *out = strtoll(p, &end, 10);
    return errno || *end == '.' || *end == 'e' || *end == 'E' ? NULL : end;
}

#define KEY(name) (kn == sizeof "\"" name "\"" - 1 && !memcmp(k, "\"" name "\"", kn))

/* Parse state.json; 0 on success, -1 for anything store.load would not read as we do. */
static int parse_state(const char *text, struct state *st) {
    memset(st, 0, sizeof *st);
    st->created = "\"\"";
    st->created_n = 2;
    const char *p = skip_ws(text), *end;
    if (*p++ != '{') return -1;
    p = skip_ws(p);
    if (*p == '}') return -1;
    for (;;) {
        const char *k = p;
        if (!(end = json_string(p))) return -1;
        size_t kn = end - k;
        p = skip_ws(end);
        if (*p++ != ':') return -1;
        p = skip_ws(p);
        if (KEY("id") || KEY("bundle") || KEY("created") || KEY("cgroups_path")) {
            if (!(end = json_string(p))) return -1;
            size_t n = end - p;
            if (KEY("id")) { st->id = p; st->id_n = n; }
            else if (KEY("bundle")) { st->bundle = p; st->bundle_n = n; }
            else if (KEY("created")) { st->created = p; st->created_n = n; }
            else {
                if (memchr(p, '\\', n) || n - 2 >= sizeof st->cgroups_path) return -1;
                memcpy(st->cgroups_path, p + 1, n - 2);
                st->cgroups_path[n - 2] = 0;
            }
        } else if (KEY("pid") || KEY("start_time")) {
            if (!(end = json_int(p, KEY("pid") ? &st->pid : &st->start_time))) return -1;
        } else if (KEY("annotations")) {  /* an object of strings, as create records it */
            if (*p++ != '{') return -1;
            p = skip_ws(p);
            st->n_ann = 0;
            if (*p == '}') p++;
            else for (;;) {
                if (st->n_ann == 64) return -1;
                for (int i = 0; i < 2; i++) {
                    if (!(end = json_string(p))) return -1;
                    st->ann[st->n_ann][i] = p;
                    st->ann_n[st->n_ann][i] = end - p;
                    p = skip_ws(end);
                    if (i == 0 && *p++ != ':') return -1;
                    p = skip_ws(p);
                }
                st->n_ann++;
                if (*p == '}') { p++; break; }
                if (*p++ != ',') return -1;
                p = skip_ws(p);
            }
            end = p;
        } else {
            return -1;  /* a key State does not have: Python says what it makes of it */
        }
        p = skip_ws(end);
        if (*p == '}') break;
        if (*p++ != ',') return -1;
        p = skip_ws(p);
    }
    return *skip_ws(p + 1) || !st->id || !st->bundle ? -1 : 0;
}

/* snprintf into a PATH_MAX buffer; a path that long is not ours to guess about. */
static char *__attribute__((format(printf, 2, 3))) pathf(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX) hand_over();
    return out;
}

/* The end of any JSON value, or NULL (depth-bounded). */
static const char *skip_value(const char *p, int depth) {
    p = skip_ws(p);
    if (*p == '"') return json_string(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        if (depth > 64) return NULL;
        p = skip_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = json_string(skip_ws(p)))) return NULL;
                p = skip_ws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = skip_value(p, depth + 1))) return NULL;
            p = skip_ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    for (const char *lit = "true\0false\0null\0"; *lit; lit += strlen(lit) + 1)
        if (!strncmp(p, lit, strlen(lit))) return p + strlen(lit);
    size_t n = strspn(p, "+-0123456789.eE");
    return n ? p + n : NULL;
}

static char *cpath(const char *name) {
    static char buf[4][PATH_MAX];
    static int next;
    char *p = buf[next++ % 4];
    return pathf(p, "%s/%s%s%s", root, cid, *name ? "/" : "", name);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole of a small file, NUL-terminated, or NULL with errno set. */
static char *slurp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
        if (!buf) abort();
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0) { int e = errno; close(fd); free(buf); errno = e; return NULL; }
        if (got == 0) break;
        n += got;
    }
    close(fd);
    buf[n] = 0;
    return buf;
}

/* After a member of an object: past its ',' to the next key (none trailing), or at '}'. */
static const char *next_member(const char *p) {
    p = skip_ws(p);
    if (*p == ',') {
        p = skip_ws(p + 1);
        if (*p != '"') hand_over();
    } else if (*p != '}') {
        hand_over();
    }
    return p;
}

/* Whether the hooks create recorded (hooks.json: {"hooks": config.hooks, ...}) include
   `kind` (poststart for start, poststop for delete: those run in Python). Only a file read
   whole and found without them is "no"; anything else is handed to Python. */
static int has_hooks(const char *kind) {
    char *text = slurp(cpath("hooks.json"));
    if (!text && errno == ENOENT) return 0;
    if (!text) hand_over();
    int found = 0;
    const char *p = skip_ws(text), *end;
    if (*p++ != '{') hand_over();
    for (p = skip_ws(p); *p != '}';) {
        const char *k = p;
        if (!(end = json_string(p))) hand_over();
        size_t kn = end - k;
        p = skip_ws(end);
        if (*p++ != ':') hand_over();
        p = skip_ws(p);
        if (KEY("hooks") && *p == '{') {  /* {kind: [hook...], ...} */
            for (p = skip_ws(p + 1); *p != '}';) {
                const char *h = p;
                if (!(end = json_string(p))) hand_over();
                p = skip_ws(end);
                if (*p++ != ':') hand_over();
                p = skip_ws(p);
                size_t len = strlen(kind);
                int mine = (size_t)(end - h) == len + 2 && !strncmp(h + 1, kind, len);
                /* hooks.of: `hooks.get(kind) or []`: an empty list or null is none */
                if (mine && strncmp(p, "null", 4) && !(*p == '[' && *skip_ws(p + 1) == ']'))
                    found = 1;
                if (!(p = skip_value(p, 1))) hand_over();
                p = next_member(p);
            }
            end = p + 1;
        } else if (KEY("hooks") && strncmp(p, "null", 4)) {
            hand_over();  /* not an object: Python says what it makes of it */
        } else if (!(end = skip_value(p, 0))) {
            hand_over();
        }
        p = next_member(end);
    }
    if (*skip_ws(p + 1)) hand_over();
    free(text);
    return found;
}

/* store.load: ContainerNotFound without state.json; anything else odd goes to Python. */
static void load(struct state *st) {
    char *text = slurp(cpath("state.json"));
    if (!text && errno == ENOENT) fail("container '%s' does not exist", cid);
    if (!text || parse_state(text, st) < 0) hand_over();
}

/* Field 22 of /proc/<pid>/stat (start time in ticks), or -1: gone, or a zombie. */
static long long proc_start_time(long long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    char *text = slurp(path);
    if (!text) return -1;
    char *p = strrchr(text, ')');
    long long value = -1;
    if (p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X') {
        p += 2;
        for (int field = 0; field < 19 && p; field++) {
            p = strchr(p, ' ');
            if (p) p++;
        }
        if (p) value = strtoll(p, NULL, 10);
    }
    free(text);
    return value;
}

static int alive(const struct state *st) {
    long long started = st->pid ? proc_start_time(st->pid) : -1;
    return started >= 0 && started == st->start_time;  /* -1 is Python's None */
}

/* text.strip() of Python: in place. */
static char *strip(char *text) {
    while (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r') text++;
    size_t n = strlen(text);
    while (n && strchr(" \n\t\r", text[n - 1])) text[--n] = 0;
    return text;
}

/* cgroups.is_frozen: v1 freezer.state (the answer, if readable), else v2 cgroup.freeze;
   neither readable: not frozen. */
static int is_frozen(const char *path) {
    while (*path == '/') path++;
    size_t n = strlen(path);
    while (n && path[n - 1] == '/') n--;
    if (!n) return 0;
    char file[PATH_MAX];
    pathf(file, CGROUP_ROOT "/freezer/%.*s/freezer.state", (int)n, path);
    char *text = slurp(file);
    int frozen;
    if (text) {
        frozen = !strcmp(strip(text), "FROZEN") || !strcmp(strip(text), "FREEZING");
    } else {
        pathf(file, CGROUP_ROOT "/%.*s/cgroup.freeze", (int)n, path);
        text = slurp(file);
        frozen = text && !strcmp(strip(text), "1");
    }
    free(text);
    return frozen;
}

/* store.status: derived, never stored. */
static const char *status_of(const struct state *st) {
    if (!alive(st)) return "stopped";
    if (exists(cpath("exec.fifo"))) return "created";
    return is_frozen(st->cgroups_path) ? "paused" : "running";
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* -- the verbs ------------------------------------------------------------------------ */

/* state.py: the OCI state as json.dumps(indent=2) writes it. */
static int verb_state(void) {
    struct state st;
    load(&st);
    const char *status = status_of(&st);
    printf("{\n  \"ociVersion\": \"" OCI_VERSION "\",\n  \"id\": %.*s,\n  \"status\": \"%s\",\n"
           "  \"pid\": %lld,\n  \"bundle\": %.*s,\n  \"annotations\": ",
           (int)st.id_n, st.id, status, strcmp(status, "stopped") ? st.pid : 0,
           (int)st.bundle_n, st.bundle);
    if (!st.n_ann) fputs("{}", stdout);
    for (int i = 0; i < st.n_ann; i++)
        printf("%s\n    %.*s: %.*s", i ? "," : "{", (int)st.ann_n[i][0], st.ann[i][0],
               (int)st.ann_n[i][1], st.ann[i][1]);
    if (st.n_ann) fputs("\n  }", stdout);
    printf(",\n  \"created\": %.*s\n}\n", (int)st.created_n, st.created);
    return 0;
}

static int readable(int fd, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* start.py: release the init blocked on exec.fifo, return once it executed the program. */
static int verb_start(void) {
    if (has_hooks("poststart")) hand_over();  /* hooks run in Python */
    struct state st;
    load(&st);
    const char *status = status_of(&st);
    if (strcmp(status, "created"))
        fail("cannot start container %s: it is %s, not created", cid, status);
    const char *fifo = cpath("exec.fifo");
    int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) fail("cannot start container %s: already started", cid);
    if (fd < 0) fail("%s: %s", strerror(errno), fifo);
    int tick;
    for (tick = 0; tick < 1000; tick++) {  /* WAIT_TICKS x 10 ms */
        if (readable(fd, 10)) {
            char byte;
            ssize_t got = read(fd, &byte, 1);
            if (got == 1 && byte == 'E') {  /* a startContainer hook failed (init.py) */
                char rest[8192];
                size_t n = 0;
                for (int i = 0; i < 100 && n < sizeof rest; i++) {
                    readable(fd, 50);
                    ssize_t r = read(fd, rest + n, sizeof rest - n);
                    if (r < 0 && errno == EAGAIN) continue;
                    if (r <= 0) break;
                    n += r;
                }
                if (!n) fail("startContainer hook failed");
                fail("%.*s", (int)n, rest);
            }
            if (got == 1) break;
            if (got < 0 && errno != EAGAIN) fail("%s", strerror(errno));
        }
        if (!alive(&st)) fail("container %s exited before start", cid);
    }
    if (tick == 1000) fail("container %s: init did not answer start", cid);
    char buf[64];
    for (int i = 0; i < 1000; i++) {  /* EXEC_TICKS: until EOF, the init's execve */
        readable(fd, 10);
        ssize_t got = read(fd, buf, sizeof buf);
        if (got == 0) break;
        if (got < 0 && errno != EAGAIN) fail("%s", strerror(errno));
    }
    close(fd);
    if (unlink(fifo) < 0 && errno != ENOENT) fail("%s: %s", strerror(errno), fifo);
    char pid[24];
    snprintf(pid, sizeof pid, "%lld", st.pid);
    log_info("started", "pid", pid);
    return 0;
}

/* kill.parse_signal's names (Python's signal.Signals on Linux, aliases included). */
static const struct { const char *name; int num; } SIGNALS[] = {
    {"ABRT", 6}, {"ALRM", 14}, {"BUS", 7}, {"CHLD", 17}, {"CLD", 17}, {"CONT", 18},
    {"FPE", 8}, {"HUP", 1}, {"ILL", 4}, {"INT", 2}, {"IO", 29}, {"IOT", 6}, {"KILL", 9},
    {"PIPE", 13}, {"POLL", 29}, {"PROF", 27}, {"PWR", 30}, {"QUIT", 3}, {"RTMAX", 64},
    {"RTMIN", 34}, {"SEGV", 11}, {"STKFLT", 16}, {"STOP", 19}, {"SYS", 31}, {"TERM", 15},
    {"TRAP", 5}, {"TSTP", 20}, {"TTIN", 21}, {"TTOU", 22}, {"URG", 23}, {"USR1", 10},
    {"USR2", 12}, {"VTALRM", 26}, {"WINCH", 28}, {"XCPU", 24}, {"XFSZ", 25},
};

/* KILL, SIGKILL, sigkill, 9 -> 9. A value whose repr() is not plain quoting, or with
   spaces (Python strips them), goes to Python. */
static int parse_signal(const char *value) {
    if (!*value) hand_over();
    for (const char *c = value; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == '\'' || *c == '\\') hand_over();
    if (strspn(value, "0123456789") == strlen(value)) {
        size_t lead = strspn(value, "0");
        long num = strlen(value + lead) > 3 ? 0 : strtol(value, NULL, 10);
        if (num > 0 && num < 65) return (int)num;
        fail("invalid signal '%s'", value);
    }
    const char *name = value;
    if (!strncasecmp(name, "SIG", 3)) name += 3;
    for (size_t i = 0; i < sizeof SIGNALS / sizeof *SIGNALS; i++)
        if (!strcasecmp(name, SIGNALS[i].name)) return SIGNALS[i].num;
    fail("invalid signal '%s'", value);
}

/* kill.py: signal the init; a stopped container has nothing to signal. */
static int verb_kill(const char *signal_name) {
    int sig = parse_signal(signal_name);
    struct state st;
    load(&st);
    if (!alive(&st)) fail("container %s is not running", cid);
    if (kill((pid_t)st.pid, sig) < 0) {
        if (errno == ESRCH) fail("container %s is not running", cid);
        fail("%s", strerror(errno));
    }
    return 0;
}

/* The container's cgroup dirs as cgroups.for_path finds them: v2 one dir; v1 one per
   hierarchy (co-mounted controllers share one), in v1.CONTROLLERS' order. `procs` is
   the cgroup.procs that v1/v2 .pids() reads. */
static const char *CONTROLLERS[] = {"memory", "pids", "cpu", "cpuacct", "cpuset", "devices",
                                    "freezer", "blkio", "hugetlb", "net_cls", "net_prio"};
#define NCTRL (sizeof CONTROLLERS / sizeof *CONTROLLERS)

static int cgroup_dirs(const char *path, char dirs[][PATH_MAX], char *procs) {
    while (*path == '/') path++;
    int n = 0;
    procs[0] = 0;
    if (exists(CGROUP_ROOT "/cgroup.controllers")) {
        pathf(dirs[n++], CGROUP_ROOT "/%s", path);
        pathf(procs, "%s/cgroup.procs", dirs[0]);
        return n;
    }
    char seen[NCTRL][PATH_MAX];
    int pick = 99;  /* .pids() reads the first of pids, memory, freezer, cpu present */
    static const char *pref[] = {"pids", "memory", "freezer", "cpu"};
    for (size_t c = 0; c < NCTRL; c++) {
        char base[PATH_MAX], real[PATH_MAX];
        struct stat sb;
        pathf(base, CGROUP_ROOT "/%s", CONTROLLERS[c]);
        if (stat(base, &sb) < 0 || !S_ISDIR(sb.st_mode) || !realpath(base, real)) continue;
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(seen[i], real);
        if (dup) continue;
        strcpy(seen[n], real);
        pathf(dirs[n], "%s/%s", base, path);
        for (int i = 0; i < 4 && i < pick; i++)
            if (!strcmp(pref[i], CONTROLLERS[c])) {
                pick = i;
                pathf(procs, "%s/cgroup.procs", dirs[n]);
            }
        n++;
    }
    return n;
}

/* cgroups' read_pids: the pids as one list, "" when unreadable (or empty). */
static int read_pids(const char *procs, char *out, size_t size) {
    char *text = procs[0] ? slurp(procs) : NULL;
    int count = 0;
    size_t n = 0;
    out[0] = 0;
    for (char *tok = text ? strtok(text, " \n\t") : NULL; tok; tok = strtok(NULL, " \n\t")) {
        if (strspn(tok, "0123456789") != strlen(tok)) { count = 0; out[0] = 0; break; }
        n += snprintf(out + n, n < size ? size - n : 0, "%s%s", count ? ", " : "", tok);
        count++;
    }
    free(text);
    if (n >= size) hand_over();  /* cannot happen with a sane pid count */
    return count;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    remove(path);  /* shutil.rmtree(ignore_errors=True) */
    return 0;
}

/* delete.py: remove what create made; --force kills a live init first. */
static int verb_delete(int force) {
    /* poststop hooks, and the mounts of a container without a mount namespace, are Python's */
    if (has_hooks("poststop") || exists(cpath("host-mounts.json"))) hand_over();
    struct state st;
    load(&st);
    const char *status = status_of(&st);
    if (strcmp(status, "stopped")) {
        if (!force)
            fail("cannot delete container %s: it is %s, not stopped (use --force)", cid, status);
        if (kill((pid_t)st.pid, SIGKILL) < 0 && errno != ESRCH) fail("%s", strerror(errno));
        int i;
        for (i = 0; i < 500 && alive(&st); i++) sleep_ms(10);
        if (i == 500) fail("container %s: init %lld did not die", cid, st.pid);
    }
    if (st.cgroups_path[0]) {
        const char *rel = st.cgroups_path;
        while (*rel == '/') rel++;
        if (!*rel) hand_over();
        static char dirs[NCTRL][PATH_MAX];
        char procs[PATH_MAX], left[8192];
        int n = cgroup_dirs(st.cgroups_path, dirs, procs);
        /* Processes that escaped the pid namespace's teardown (e.g. a shared pid ns). */
        int count = read_pids(procs, left, sizeof left);
        if (count) {
            char list[8200];
            snprintf(list, sizeof list, "[%s]", left);
            log_info("killing leftover processes", "pids", list);
        }
        for (int round = 0; round < 200 && count; round++) {
            for (char *tok = strtok(left, ", "); tok; tok = strtok(NULL, ", "))
                if (kill((pid_t)atoll(tok), SIGKILL) < 0 && errno != ESRCH)
                    fail("%s", strerror(errno));
            sleep_ms(10);
            count = read_pids(procs, left, sizeof left);
        }
        for (int i = 0; i < n; i++) {  /* rmdir_retry: exiting tasks may linger (EBUSY) */
            for (int tries = 0; rmdir(dirs[i]) < 0; tries++) {
                if (tries < 50 && errno == ENOENT) break;
                if (tries == 50 || errno != EBUSY)
                    fail("cannot remove cgroup %s: %s", st.cgroups_path, strerror(errno));
                sleep_ms(20);
            }
        }
    }
    nftw(cpath(""), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    log_info("deleted", NULL, NULL);
    return 0;
}

/* -- the command line (main.py's parser, the part this program answers) -------------- */

/* store.check_id: an id Python would refuse goes to Python, which says so. */
static int valid_id(const char *id) {
    size_t n = strlen(id);
    if (n < 1 || n > 128 || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789", id[0]))
        return 0;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")
           == n;
}

/* A path Python's Path keeps as written (no "//", "." component or trailing slash, ASCII),
   so the messages that name one name it alike. */
static int plain_path(const char *p) {
    if (!*p || strstr(p, "//") || !strcmp(p, ".") || !strncmp(p, "./", 2) ||
        strstr(p, "/./") || (strlen(p) > 1 && p[strlen(p) - 1] == '/') ||
        (strlen(p) > 1 && !strcmp(p + strlen(p) - 2, "/.")))
        return 0;
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) return 0;
    return 1;
}

/* The value of a global option: "--opt V" or "--opt=V". */
static const char *option_value(const char *word, const char *name, int *i) {
    size_t n = strlen(name);
    if (strncmp(word, name, n)) return NULL;
    if (word[n] == '=') return word + n + 1;
    if (word[n] || *i + 1 >= g_argc || g_argv[*i + 1][0] == '-') return NULL;
    return g_argv[++*i];
}

int main(int argc, char **argv) {
    g_argc = argc;
    g_argv = argv;
    if (!strcmp(front_mode(), "python")) hand_over();
    int i = 1;
    const char *value;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *w = argv[i];
        if ((value = option_value(w, "--root", &i))) root = value;
        else if ((value = option_value(w, "--log-format", &i))) {
            if (strcmp(value, "json") && strcmp(value, "text")) hand_over();
            log_json = !strcmp(value, "json");
        } else if ((value = option_value(w, "--log", &i))) log_path = value;
        else if (!strcmp(w, "--debug")) debug = 1;
        else if (!strcmp(w, "--systemd-cgroup")) continue;  /* accepted, unused (main.py) */
        else hand_over();  /* --version, --help, an abbreviation, a value missing... */
    }
    if (i >= argc) hand_over();
    const char *verb = argv[i++];
    if (!strcmp(verb, "create") || !strcmp(verb, "run") || !strcmp(verb, "exec")) {
        if (strcmp(front_mode(), "native")) exec_sealed();
        hand_over();
    }
    /* The verb's own words: positionals and the flags we know, in any order (argparse). */
    const char *pos[3];
    int npos = 0, force = 0;
    for (; i < argc; i++) {
        if (!strcmp(verb, "delete") && (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f")))
            force = 1;
        else if (argv[i][0] == '-' || npos == 3) hand_over();  /* kill --all, --, --help... */
        else pos[npos++] = argv[i];
    }
    int want = !strcmp(verb, "kill") ? (npos == 1 || npos == 2) : npos == 1;
    if (!want || (strcmp(verb, "state") && strcmp(verb, "start") && strcmp(verb, "kill") &&
                  strcmp(verb, "delete")))
        hand_over();
    cid = pos[0];
    if (!valid_id(cid) || !plain_path(root))
        hand_over();
    if (log_path) {  /* main.py opens it ("a") before the verb runs */
        log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (log_fd < 0) hand_over();  /* Python reports it as it does */
    }
    int rc;
    if (!strcmp(verb, "state")) rc = verb_state();
    else if (!strcmp(verb, "start")) rc = verb_start();
    else if (!strcmp(verb, "kill")) rc = verb_kill(npos == 2 ? pos[1] : "TERM");
    else rc = verb_delete(force);
    fflush(stdout);
    return rc;
}
