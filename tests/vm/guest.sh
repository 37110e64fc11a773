#!/bin/sh
# PID 1 of the guest: a host with only cgroup v2 (cgroup_no_v1=all on the kernel command
# line; controllers enabled at the root as systemd does), then pytest on MUELLE_TESTS
# (comma-separated) in MUELLE_REPO, then power off. Output goes to the serial console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sys /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
K=$(uname -r)
mkdir -p "/lib/modules/$K"  # the guest kernel's modules, for the kernel's modprobe calls
mount --bind "$MUELLE_VM_DIR/kroot/lib/modules/$K" "/lib/modules/$K"
mount -t tmpfs tmpfs /run; mount -t tmpfs -o size=2G tmpfs /tmp
printf '#!/bin/sh\nexec /bin/busybox modprobe "$@"\n' > /run/modprobe
chmod +x /run/modprobe; echo /run/modprobe > /proc/sys/kernel/modprobe
echo "+cpu +cpuset +memory +pids +io" > /sys/fs/cgroup/cgroup.subtree_control
ip link set lo up
hostname muelle-cgroup2
echo "== kernel $K; /sys/fs/cgroup: $(stat -fc %T /sys/fs/cgroup);" \
     "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd "$MUELLE_REPO" || exit 1
# shellcheck disable=SC2046
PYTHONDONTWRITEBYTECODE=1 .venv/bin/pytest -p no:cacheprovider -q -rA \
  $(echo "$MUELLE_TESTS" | tr ',' ' ') 2>&1
echo "== pytest exit $?"
echo o > /proc/sysrq-trigger  # power off (asynchronous: PID 1 must not exit first)
sleep 60
