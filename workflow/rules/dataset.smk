# Dataset-level tables: speaker-disjoint splits, the expression basis learned on
# the training split, the QC table, the training packs and normalisation statistics.


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


# The expression basis as map-reduce (ksdiff.extract.basis): each shard's training clips'
# displacement moments, merged and diagonalised by one small job.
rule basis_part:
    input:
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
        pose=f"{RESULTS}/{{dataset}}/shards/pose/{{shard}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/basis_parts/{{shard}}.npz",
    params:
        pose_dir=lambda wc: f"{RESULTS}/{wc.dataset}/pose",
        opts=opts("basis_part"),
    log:
        f"{LOGS}/{{dataset}}/basis_part/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff basis-part --splits {input.splits} --pose {input.pose} --pose-dir {params.pose_dir} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule basis:
    input:
        per_shard(f"{RESULTS}/{{dataset}}/basis_parts/{{shard}}.npz"),
    output:
        f"{RESULTS}/{{dataset}}/basis.npz",
    params:
        opts=opts("basis"),
    log:
        f"{LOGS}/{{dataset}}/basis.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-basis --parts {input} --out {output} --opts {params.opts} > {log} 2>&1"


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


# Training packs (ksdiff.data.packs): a shard's clips as training-ready arrays, memory-mapped
# by training. The index ({shard}.parquet, the job's shard summary) is the output; the pack
# (.arrow) lies beside it like the per-clip tables, so a rerun copies its unchanged clips.
rule pack:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
        tables=[f"{RESULTS}/{{dataset}}/shards/{step}/{{shard}}.parquet" for step in ("coeffs", "features", "transcript")],
    output:
        f"{RESULTS}/{{dataset}}/packs/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("pack"),
    log:
        f"{LOGS}/{{dataset}}/pack/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff pack --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


# Statistics as map-reduce (ksdiff.data.stats): each shard's usable training clips' moments,
# read from its pack, merged with Chan et al.'s update by one small job.
rule stats_part:
    input:
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
        index=f"{RESULTS}/{{dataset}}/packs/{{shard}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/stats_parts/{{shard}}.parquet",
    params:
        opts=opts("stats_part"),
    log:
        f"{LOGS}/{{dataset}}/stats_part/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff stats-part --qc {input.qc} --splits {input.splits} --index {input.index} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule stats:
    input:
        per_shard(f"{RESULTS}/{{dataset}}/stats_parts/{{shard}}.parquet"),
    output:
        f"{RESULTS}/{{dataset}}/stats.parquet",
    params:
        opts=opts("stats"),
    log:
        f"{LOGS}/{{dataset}}/stats.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-stats --parts {input} --out {output} --opts {params.opts} > {log} 2>&1"
