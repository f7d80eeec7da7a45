# Dataset-level tables: speaker-disjoint splits, the expression basis learned on
# the training split, the QC table and normalisation statistics.


rule splits:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
        # dataset.split_file (a path or split -> path): editing a published split reruns the split.
        split_file=plan.split_files(config),
    output:
        f"{RESULTS}/{{dataset}}/splits.parquet",
    params:
        opts=opts("splits"),
    log:
        f"{LOGS}/{{dataset}}/splits.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff splits --manifest {input.manifest} --out {output} --opts {params.opts} > {log} 2>&1"


rule basis:
    input:
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
        pose=per_shard(f"{RESULTS}/{{dataset}}/shards/pose/{{shard}}.parquet"),
    output:
        f"{RESULTS}/{{dataset}}/basis.npz",
    params:
        pose_dir=lambda wc: f"{RESULTS}/{wc.dataset}/pose",
        opts=opts("basis"),
    log:
        f"{LOGS}/{{dataset}}/basis.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff basis --splits {input.splits} --pose {input.pose} --pose-dir {params.pose_dir} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule qc:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
        tables=per_shard(
            *(
                f"{RESULTS}/{{dataset}}/shards/{step}/{{shard}}.parquet"
                for step in ("audio", "transcript", "landmarks", "pose", "coeffs", "features")
            )
        ),
    output:
        f"{RESULTS}/{{dataset}}/qc.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("qc"),
    log:
        f"{LOGS}/{{dataset}}/qc.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff qc --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


# The usable test clips in shards: inference runs one job per shard and method.
checkpoint test_shards:
    input:
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
    output:
        f"{RESULTS}/{{dataset}}/test_shards.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("test_shards"),
    log:
        f"{LOGS}/{{dataset}}/test_shards.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff test-shards --results {params.results} --out {output} --opts {params.opts} > {log} 2>&1"


rule stats:
    input:
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
    output:
        f"{RESULTS}/{{dataset}}/stats.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("stats"),
    log:
        f"{LOGS}/{{dataset}}/stats.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff stats --qc {input.qc} --splits {input.splits} --results {params.results}"
        " --out {output} --opts {params.opts} > {log} 2>&1"
