#!/usr/bin/env bash
# A SLURM cluster of two virtual nodes on this machine, from Debian's packages (slurmctld,
# slurmd, slurm-client, munge), to try ray-sweep.sbatch without a real cluster. Its daemons run
# in the foreground of their own sessions, as root, without systemd; every file they use lives
# in one folder, and `stop` ends exactly the processes `start` began (by PID).
#
#   platform/slurm/local-cluster.sh start DIR [CPUS_PER_NODE]   # prints the env to use it
#   export SLURM_CONF=DIR/slurm.conf
#   sbatch ...; squeue; scontrol requeue JOB
#   platform/slurm/local-cluster.sh stop DIR
#
# Both nodes answer on 127.0.0.1 (ports per node), so run it where 127.0.0.1 is the only
# network the jobs should use (the tests run it in a network namespace of their own).
# `cred_expire=10` lets a requeued job start again after ~11 s instead of SLURM's 121 s.
set -euo pipefail

command=${1:?usage: local-cluster.sh start|stop DIR [CPUS_PER_NODE]}
dir=${2:?usage: local-cluster.sh start|stop DIR [CPUS_PER_NODE]}
cpus=${3:-2}

stop() {
    local pidfile pid
    for pidfile in "$dir"/pids/slurmd-n2 "$dir"/pids/slurmd-n1 "$dir"/pids/slurmctld "$dir"/pids/munged; do
        [[ -f "$pidfile" ]] || continue
        pid=$(<"$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local limit=$1
    shift
    for _ in $(seq $((limit * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "local-cluster: timed out waiting for: $*" >&2
    return 1
}

start() {
    mkdir -p "$dir"/{pids,state,spool-n1,spool-n2,munge}
    chmod 700 "$dir" "$dir/munge"
    dir=$(cd "$dir" && pwd)
    local host ctl_port n1_port n2_port
    host=$(hostname)
    ctl_port=$(free_port)
    n1_port=$(free_port)
    n2_port=$(free_port)
    if [[ ! -f "$dir/munge/munge.key" ]]; then
        head -c 1024 /dev/urandom >"$dir/munge/munge.key"
        chmod 400 "$dir/munge/munge.key"
    fi
    cat >"$dir/slurm.conf" <<EOF
ClusterName=sweeps-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd-%n.pidfile
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n1_port CPUs=$cpus RealMemory=4000 Gres=gpu:0 State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n2_port CPUs=$cpus RealMemory=4000 Gres=gpu:0 State=UNKNOWN
PartitionName=local Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
    : >"$dir/gres.conf"
    export SLURM_CONF="$dir/slurm.conf"

    setsid munged --foreground --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed" \
        </dev/null >>"$dir/munged.out" 2>&1 &
    echo $! >"$dir/pids/munged"
    wait_for 10 test -S "$dir/munge/munge.socket"

    setsid slurmctld -D -i -f "$dir/slurm.conf" </dev/null >>"$dir/slurmctld.out" 2>&1 &
    echo $! >"$dir/pids/slurmctld"
    wait_for 20 scontrol ping
    for node in n1 n2; do
        setsid slurmd -D -N "$node" -f "$dir/slurm.conf" </dev/null >>"$dir/slurmd-$node.out" 2>&1 &
        echo $! >"$dir/pids/slurmd-$node"
    done
    wait_for 30 bash -c "[[ \$(sinfo -h -N -t idle -o %N | sort -u | wc -l) -ge 2 ]]"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

case "$command" in
start) start ;;
stop) stop ;;
*)
    echo "usage: local-cluster.sh start|stop DIR [CPUS_PER_NODE]" >&2
    exit 2
    ;;
esac
