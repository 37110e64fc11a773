/* sysprobe: try the system calls Docker's seccomp profile decides about and print one
 * "name=result" line each, result "ok" or the errno name (EPERM, ENOSYS, ...).
 * Built static on the test machine (tests/support/sysprobe/__init__.py) and run inside
 * containers, so the filter each runtime installed is observed from the inside. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report_errno(const char *name, int err) {
    if (err == 0)
        printf("%s=ok\n", name);
    else
        printf("%s=%s\n", name, strerrorname_np(err));
}

/* errno is read here, after the call in the argument list has returned. */
static void report(const char *name, long ret) { report_errno(name, ret < 0 ? errno : 0); }

static void try_socket(const char *name, int domain, int type) {
    long fd = socket(domain, type, 0);
    report(name, fd);
    if (fd >= 0)
        close((int)fd);
}

/* Runs fn in a child so that a call that succeeds changes nothing in the probe. */
static void in_child(const char *name, long (*fn)(void)) {
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        long ret = fn();
        int err = ret < 0 ? errno : 0;
        if (write(pipefd[1], &err, sizeof err) != sizeof err)
            _exit(1);
        _exit(0);
    }
    int err = -1;
    close(pipefd[1]);
    if (read(pipefd[0], &err, sizeof err) != sizeof err)
        err = EIO;
    close(pipefd[0]);
    waitpid(pid, NULL, 0);
    report_errno(name, err);
}

static long do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long do_unshare_mnt(void) { return unshare(CLONE_NEWNS); }
static long do_chroot(void) { return chroot("/"); }
static long do_mount(void) { return mount("x", "/tmp", "tmpfs", 0, NULL); }
static long do_personality_linux32(void) { return personality(PER_LINUX32); }
static long do_personality_norandom(void) { return personality(ADDR_NO_RANDOMIZE); }

static long do_clone_newns(void) {
    long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long do_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return pid;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    try_socket("socket_inet", AF_INET, SOCK_STREAM);
    try_socket("socket_unix", AF_UNIX, SOCK_STREAM);
    try_socket("socket_alg", 38 /* AF_ALG */, SOCK_SEQPACKET);
    try_socket("socket_vsock", 40 /* AF_VSOCK */, SOCK_STREAM);
    report("personality_query", personality(0xffffffff));
    in_child("personality_linux32", do_personality_linux32);
    in_child("personality_norandom", do_personality_norandom);
    /* clone3 with a NULL argument: the kernel answers EFAULT/EINVAL, the filter ENOSYS. */
    report("clone3", syscall(SYS_clone3, NULL, 0));
    in_child("fork", do_fork);
    in_child("clone_newns", do_clone_newns);
    in_child("unshare_user", do_unshare_user);
    in_child("unshare_mnt", do_unshare_mnt);
    in_child("mount", do_mount);
    in_child("chroot", do_chroot);
    report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    report("add_key", syscall(SYS_add_key, "user", "muelle", "x", 1,
                              KEY_SPEC_SESSION_KEYRING));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("pidfd_open", syscall(SYS_pidfd_open, getpid(), 0));
    report("membarrier", syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0));
    return 0;
}
