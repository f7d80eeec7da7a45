#!/usr/bin/env bash
# A real one-node Slurm cluster on this (throwaway, Debian 12, root) machine, and the
# tiny synthetic config (workflow/cluster/tiny.yaml) run end to end through it with
# `snakemake --workflow-profile workflow/profiles/slurm`, plus the same config run
# locally; the two leaderboards must hold the same numbers.
#
#   bash workflow/cluster/slurm_local.sh        (after `bash envs/install.sh`)
#
# What it does, skipping what is already there:
#  1. apt: slurm-wlm, munge, and slurmdbd with mariadb (sacct needs the accounting
#     database: without slurmdbd it has no records);
#  2. writes /etc/slurm/slurm.conf (this node: its CPUs and memory from `slurmd -C`, no
#     GPU GRES; partitions `cpu` and `gpu` named as in the profile) and slurmdbd.conf,
#     then starts munged, mariadb, slurmdbd, slurmctld and slurmd;
#  3. a driver venv (.venv-driver: snakemake + the slurm executor plugin, which wants
#     numpy >= 2; the rules keep running in .venv, numpy 1.26 for mediapipe);
#  4. runs the tiny config locally and on Slurm, in $KSDIFF_CLUSTER_RUN (default
#     .cluster-run/), checks that every Slurm job is COMPLETED in sacct and that the
#     leaderboards' metrics tables are equal.
# It refuses to touch an existing slurm.conf it did not write.
#
# KSDIFF_CLUSTER_NPROC=2 makes the Slurm run train every method with 2 DDP processes (torchrun under
# the profile, train.nproc_per_node 2, gloo on this GPU-less node) against the local run's 1 process;
# both train with train.micro_batches 2, so both train the same model (ksdiff.training.loop). DDP sums
# the two processes' gradients in another order than one process does, so the models agree to float32
# rounding, not bit for bit (tests/test_train_ddp.py: rtol 1e-5 after 12 steps); the metrics are then
# compared within a tolerance and printed side by side instead of compared exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
NPROC=${KSDIFF_CLUSTER_NPROC:-1}
if [ "$NPROC" = 1 ]; then RUN=${KSDIFF_CLUSTER_RUN:-$REPO/.cluster-run}; else RUN=${KSDIFF_CLUSTER_RUN:-$REPO/.cluster-run-ddp$NPROC}; fi
MARK="# written by ksdiff workflow/cluster/slurm_local.sh"
log() { echo "[slurm_local] $*"; }

[ -x .venv/bin/ksdiff ] || { echo "run bash envs/install.sh first (.venv/bin/ksdiff is missing)" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

# 1. packages
need=()
for pkg in slurm-wlm munge slurmdbd mariadb-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. configuration and daemons
host=$(hostname -s)
cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mem=$((mem * 90 / 100))  # leave room for the daemons and the driver
conf=/etc/slurm/slurm.conf
if [ -e $conf ] && ! grep -qF "$MARK" $conf; then
  echo "$conf exists and was not written by this script: not touching it" >&2; exit 1
fi
$SUDO mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/munge
$SUDO chown slurm:slurm /var/log/slurm /var/lib/slurm/slurmctld
$SUDO chown munge:munge /run/munge
$SUDO tee $conf >/dev/null <<EOF
$MARK
ClusterName=ksdiff
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
# No cgroup hierarchy to rely on inside a container: plain process tracking.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
# The profile's GPU partition, on the same node: there is no GPU here, so the run
# below drops the profile's gpu request (and no GRES is configured).
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
dbdconf=/etc/slurm/slurmdbd.conf
$SUDO tee $dbdconf >/dev/null <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=ksdiff-local
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
EOF
$SUDO chown slurm:slurm $dbdconf
$SUDO chmod 600 $dbdconf

running() { pgrep -x "$1" >/dev/null; }
running munged || { log "starting munged"; $SUDO runuser -u munge -- /usr/sbin/munged; }
running mariadbd || { log "starting mariadb"; $SUDO /etc/init.d/mariadb start >/dev/null; }
$SUDO mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'ksdiff-local';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
running slurmdbd || { log "starting slurmdbd"; $SUDO /usr/sbin/slurmdbd; }
for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -n list cluster format=cluster | grep -qw ksdiff || $SUDO sacctmgr -i add cluster ksdiff >/dev/null
sacctmgr -n list account format=account | grep -qw ksdiff || $SUDO sacctmgr -i add account ksdiff >/dev/null
user=$(id -un)
sacctmgr -n list user format=user | grep -qw "$user" || $SUDO sacctmgr -i add user "$user" account=ksdiff >/dev/null
running slurmctld || { log "starting slurmctld"; $SUDO /usr/sbin/slurmctld; }
running slurmd || { log "starting slurmd"; $SUDO /usr/sbin/slurmd; }
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' && break; sleep 1; done
$SUDO scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
log "cluster up: $(sinfo -h -o '%P %D %T %c CPUs %m MB' | tr '\n' ';')"

# 3. the driver's environment
if [ ! -x .venv-driver/bin/snakemake ]; then
  log "creating .venv-driver (snakemake + snakemake-executor-plugin-slurm)"
  "${PYTHON:-python3.11}" -m venv .venv-driver
  .venv-driver/bin/python -m pip install -q snakemake==9.27.1 snakemake-executor-plugin-slurm==2.8.0 pyarrow==25.0.0
fi

# 4. the tiny config, locally and on Slurm
mkdir -p "$RUN/local" "$RUN/slurm"
cp workflow/cluster/tiny.yaml "$RUN/local/config.yaml"
cp workflow/cluster/tiny.yaml "$RUN/slurm/config.yaml"
if [ "$NPROC" != 1 ]; then
  .venv/bin/python - "$RUN" "$NPROC" <<'PY'
import sys
from pathlib import Path

import yaml

run, nproc = Path(sys.argv[1]), int(sys.argv[2])
for side, procs in (("local", 1), ("slurm", nproc)):
    path = run / side / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["train"].update(micro_batches=nproc, nproc_per_node=procs)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
PY
fi
export OMP_NUM_THREADS=1
t0=$(date +%s)
log "local run ($RUN/local)"
.venv/bin/snakemake -s Snakefile -d "$RUN/local" --cores "$cpus" > "$RUN/local.log" 2>&1 \
  || { tail -40 "$RUN/local.log"; exit 1; }
t1=$(date +%s)
# The demo's report must build without a warning (mimetypes, captions).
.venv/bin/snakemake -s Snakefile -d "$RUN/local" --report "$RUN/local/report.html" > "$RUN/report.log" 2>&1
if grep -Eiv '^(Building DAG|Updating checkpoint dependencies|Creating report|Adding |Report created)' "$RUN/report.log"; then
  echo "snakemake --report printed the lines above" >&2; exit 1
fi
log "Slurm run ($RUN/slurm)"
# This node has no GPU and $cpus CPUs: train/infer keep the profile's gpu partition
# but drop its gpu request (the command line replaces the profile's set-resources).
# sacct's window starts at the first Slurm run in $RUN (a rerun submits nothing new).
[ -s "$RUN/slurm.start" ] || date +%Y-%m-%dT%H:%M:%S > "$RUN/slurm.start"
start=$(cat "$RUN/slurm.start")
.venv-driver/bin/snakemake -s Snakefile -d "$RUN/slurm" --workflow-profile workflow/profiles/slurm \
  --set-resources train:slurm_partition=gpu infer:slurm_partition=gpu \
  > "$RUN/slurm.log" 2>&1 || { tail -60 "$RUN/slurm.log"; exit 1; }
t2=$(date +%s)
log "local $((t1 - t0)) s, Slurm $((t2 - t1)) s"

sacct -X -n -P -S "$start" -o JobID,JobName,Partition,AllocCPUS,State > "$RUN/sacct.txt"
n=$(wc -l < "$RUN/sacct.txt")
bad=$(grep -vc '|COMPLETED$' "$RUN/sacct.txt" || true)
log "sacct: $n jobs since $start, $bad not COMPLETED"
[ "$n" -gt 0 ] && [ "$bad" = 0 ] || { cat "$RUN/sacct.txt"; exit 1; }
# Same numbers: every metrics table (one row per clip, sample and metric) equal. Text
# columns name the run's own folder and the SyncNet weights' file hash, which differs
# between identical weights (torch.save records the temporary file's name of the atomic
# write): both are masked, every number is compared exactly.
.venv/bin/python - "$RUN/local" "$RUN/slurm" "$NPROC" <<'PY'
import re
import sys
from pathlib import Path

import pandas as pd

local, slurm = (Path(a) for a in sys.argv[1:3])
nproc = int(sys.argv[3])


def read(path, run):
    t = pd.read_parquet(path)
    for c in [c for c in t.columns if t[c].dtype == object or pd.api.types.is_string_dtype(t[c])]:
        t[c] = t[c].map(lambda v: re.sub(r"sha256 [0-9a-f]+", "sha256 *", v.replace(str(run), "RUN")) if isinstance(v, str) else v)
    return t


tables = sorted((local / "metrics").rglob("*.parquet"))
assert tables, f"no metrics tables under {local}/metrics"
exact = nproc == 1
for t in tables:
    a, b = read(t, local), read(slurm / t.relative_to(local), slurm)
    if exact:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        continue
    # DDP: the models agree to float32 rounding; sampling and scoring carry that on. rtol 1e-3 is far
    # above what rounding gives and far below any difference between methods.
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-3, atol=1e-6)
    if "value" in a.columns:
        rel = ((a["value"] - b["value"]).abs() / b["value"].abs().clip(lower=1e-12)).max()
        print(f"[slurm_local] {t.relative_to(local)}: largest relative difference {rel:.2e}")
        side = pd.DataFrame({"1 process": a.groupby("metric")["value"].mean(),
                             f"{nproc} processes": b.groupby("metric")["value"].mean()})
        print(side.to_string(float_format=lambda v: f"{v:.6f}"))
how = "equal" if exact else f"equal within rtol 1e-3 ({nproc} DDP processes on Slurm, 1 process locally)"
print(f"[slurm_local] {len(tables)} metrics tables {how} between the local and the Slurm run")
PY
