#!/usr/bin/env bash
# Install a mptcp-pmd .deb on this machine, check what it installed, and remove it again:
# the package check CI runs (as root). Usage: packaging/check-deb.sh PACKAGE.deb
#
# Checks: every file at its path; /etc/mptcp-pm.yaml registered as a conffile; the installed
# binary's --version and `--check-config -c /etc/mptcp-pm.yaml`; `systemd-analyze verify` of
# the installed unit; the unit enabled but not started; a changed conffile kept when the package
# is installed again; `dpkg -r` keeps the conffile, `dpkg -P` removes it and the enablement.
# Refuses to run where mptcp-pmd is installed already (it would be removed at the end).
set -euo pipefail
deb="${1:?usage: check-deb.sh PACKAGE.deb}"
[ "$(id -u)" = 0 ] || { echo "check-deb.sh: needs root (dpkg -i)" >&2; exit 1; }
for tool in dpkg systemd-analyze; do
    command -v "$tool" >/dev/null 2>&1 || { echo "check-deb.sh: $tool is missing" >&2; exit 1; }
done
if dpkg-query -W -f '${Status}' mptcp-pmd 2>/dev/null | grep -q 'ok installed\|config-files'; then
    echo "check-deb.sh: mptcp-pmd is already installed here; not touching it" >&2
    exit 1
fi

fail() { echo "check-deb.sh: FAILED: $*" >&2; exit 1; }
ok() { echo "check-deb.sh: ok: $*"; }
cleanup() { dpkg -P mptcp-pmd >/dev/null 2>&1 || true; }
trap cleanup EXIT

unit=/usr/lib/systemd/system/mptcp-pmd.service
wants=/etc/systemd/system/multi-user.target.wants/mptcp-pmd.service
files=(
    /usr/sbin/mptcp-pmd
    /etc/mptcp-pm.yaml
    "$unit"
    /usr/share/man/man1/mptcp-pmd.1.gz
    /usr/share/bash-completion/completions/mptcp-pmd
    /usr/share/zsh/vendor-completions/_mptcp-pmd
    /usr/share/fish/vendor_completions.d/mptcp-pmd.fish
    /usr/share/doc/mptcp-pmd/README.Debian
    /usr/share/doc/mptcp-pmd/OPERATIONS.md
    /usr/share/doc/mptcp-pmd/copyright
)

dpkg -i "$deb"
for f in "${files[@]}"; do
    [ -f "$f" ] || fail "$f not installed"
    dpkg -S "$f" 2>/dev/null | grep -q '^mptcp-pmd:' || fail "$f not owned by the package"
done
ok "${#files[@]} files installed at their paths"
[ -x /usr/sbin/mptcp-pmd ] || fail "/usr/sbin/mptcp-pmd not executable"
grep -qx /etc/mptcp-pm.yaml /var/lib/dpkg/info/mptcp-pmd.conffiles ||
    fail "/etc/mptcp-pm.yaml is not a conffile"
ok "/etc/mptcp-pm.yaml is a conffile"
/usr/sbin/mptcp-pmd --version
/usr/sbin/mptcp-pmd --check-config -c /etc/mptcp-pm.yaml >/dev/null ||
    fail "--check-config -c /etc/mptcp-pm.yaml"
ok "mptcp-pmd --check-config -c /etc/mptcp-pm.yaml"
zcat /usr/share/man/man1/mptcp-pmd.1.gz | grep -c '^\.TH mptcp-pmd 1' >/dev/null || fail "man page"
grep -q 'complete -F' /usr/share/bash-completion/completions/mptcp-pmd || fail "bash completion"
grep -q '#compdef mptcp-pmd' /usr/share/zsh/vendor-completions/_mptcp-pmd || fail "zsh completion"
grep -q 'complete -c mptcp-pmd' /usr/share/fish/vendor_completions.d/mptcp-pmd.fish ||
    fail "fish completion"
ok "man page and completions"
grep -q '^ExecStart=/usr/sbin/mptcp-pmd ' "$unit" || fail "the unit does not run /usr/sbin/mptcp-pmd"
systemd-analyze verify "$unit"
ok "systemd-analyze verify $unit"
[ -L "$wants" ] || fail "the unit is not enabled ($wants missing)"
if [ -d /run/systemd/system ] && systemctl is-active --quiet mptcp-pmd; then
    fail "the installation started the daemon"
fi
ok "unit enabled, not started"

# A changed conffile survives installing the package again (dpkg keeps the admin's version
# when the packaged one did not change; --force-confold only answers if it asked).
echo "# changed by check-deb.sh" >>/etc/mptcp-pm.yaml
dpkg -i --force-confold "$deb" >/dev/null
grep -q 'changed by check-deb.sh' /etc/mptcp-pm.yaml || fail "reinstall replaced the changed conffile"
ok "changed conffile kept on reinstall"

dpkg -r mptcp-pmd
[ ! -e /usr/sbin/mptcp-pmd ] || fail "dpkg -r left /usr/sbin/mptcp-pmd"
[ ! -e "$unit" ] || fail "dpkg -r left $unit"
[ -f /etc/mptcp-pm.yaml ] || fail "dpkg -r removed the conffile"
ok "dpkg -r: files gone, conffile kept"
dpkg -P mptcp-pmd
[ ! -e /etc/mptcp-pm.yaml ] || fail "dpkg -P left /etc/mptcp-pm.yaml"
[ ! -e "$wants" ] || fail "dpkg -P left $wants"
ok "dpkg -P: conffile and enablement gone"
trap - EXIT
echo "check-deb.sh: $deb: all checks passed"
