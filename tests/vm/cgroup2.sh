#!/bin/sh
# Run muelle tests on a real cgroup v2 hierarchy: Debian's kernel under qemu, the host's own
# root file system shared read-only (9p) with a tmpfs overlay, cgroup v1 switched off.
#   tests/vm/cgroup2.sh [comma-separated pytest targets]   (default: tests/e2e/test_limits.py)
# Needs root, qemu-system-x86 and busybox-static (apt); fetches linux-image-amd64 with
# apt-get download into MUELLE_VM_DIR (default /var/tmp/muelle-cgroup2-vm). Uses KVM when
# it works (MUELLE_VM_ACCEL=kvm) and TCG emulation otherwise (the default: nested KVM fails
# on some hosts). Prints the guest's console; exits with pytest's status.
set -eu
for tool in qemu-system-x86_64 busybox; do
  command -v "$tool" >/dev/null || {
    echo "cgroup2.sh: $tool is missing (apt-get install qemu-system-x86 busybox-static)" >&2
    exit 2; }
done
REPO=$(cd "$(dirname "$0")/../.." && pwd)
VM=${MUELLE_VM_DIR:-/var/tmp/muelle-cgroup2-vm}
TESTS=${1:-tests/e2e/test_limits.py}
mkdir -p "$VM"
if [ ! -f "$VM/initrd.gz" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
  (cd "$VM" && apt-get download "$pkg" && dpkg-deb -x "$pkg"_*.deb kroot && rm -f "$pkg"_*.deb)
  K=$(ls "$VM/kroot/lib/modules")
  busybox depmod -b "$VM/kroot" "$K"
  rm -rf "$VM/initrd" && mkdir -p "$VM/initrd/bin" "$VM/initrd/mods"
  (cd "$VM/initrd" && mkdir -p proc sys dev lower rw newroot)
  cp /bin/busybox "$VM/initrd/bin/busybox"
  cp "$REPO/tests/vm/init" "$VM/initrd/init" && chmod +x "$VM/initrd/init"
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs \
           fscache 9pnet 9pnet_virtio 9p overlay; do
    f=$(find "$VM/kroot/lib/modules/$K/kernel" -name "$m.ko" | head -1)
    [ -n "$f" ] && cp "$f" "$VM/initrd/mods/"
  done
  (cd "$VM/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$VM/initrd.gz")
fi
K=$(ls "$VM/kroot/lib/modules")
if [ "${MUELLE_VM_ACCEL:-tcg}" = kvm ]; then accel="-enable-kvm -cpu host"
else accel="-accel tcg,thread=multi -cpu max"; fi
out="$VM/console.log"
# shellcheck disable=SC2086
timeout "${MUELLE_VM_TIMEOUT:-3600}" qemu-system-x86_64 $accel -smp 2 -m 3072 \
  -kernel "$VM/kroot/boot/vmlinuz-$K" -initrd "$VM/initrd.gz" \
  -append "console=ttyS0 quiet cgroup_no_v1=all panic=-1 MUELLE_GUEST=$REPO/tests/vm/guest.sh MUELLE_REPO=$REPO MUELLE_VM_DIR=$VM MUELLE_TESTS=$TESTS" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -nographic -no-reboot -nic none | tee "$out"
status=$(sed -n 's/^== pytest exit \([0-9]*\).*/\1/p' "$out" | tail -1)
exit "${status:-1}"
