# Training and sampling: one model per trained method, predictions for every
# usable test clip in the coefficient schema (several samples per clip), one job
# per shard of test clips and method with one model load.


rule train:
    input:
        dataset_tables,
    output:
        f"{MODELS}/{{dataset}}/{{method}}/model.pt",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("train"),
    log:
        f"{LOGS}/{{dataset}}/train/{{method}}.log",
    wildcard_constraints:
        method="|".join(TRAINED) or "^$",
    priority: PRIORITY["train"]
    threads: TRAIN_THREADS
    resources:
        mem_mb=8000,
        runtime=720,
    conda:
        "../../envs/ksdiff.yaml"
    # TRAIN_LAUNCH: `ksdiff`, or torchrun (on several nodes srun + torchrun) starting each process as
    # `python -m ksdiff` (common.smk, ksdiff.plan.train_launch): still one command, and every process runs
    # through ksdiff's CLI, which pins the numerics before torch loads.
    shell:
        f"{TRAIN_LAUNCH} train --results {{params.results}} --method {{wildcards.method}} --out {{output}}"
        " --opts {params.opts} > {log} 2>&1"


rule infer:
    input:
        tables=dataset_tables,
        shards=f"{RESULTS}/{{dataset}}/test_shards.parquet",
        checkpoint=f"{MODELS}/{{dataset}}/{{method}}/model.pt",
    output:
        f"{PREDICTIONS}/{{dataset}}/shards/{{method}}/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        out_dir=lambda wc: f"{PREDICTIONS}/{wc.dataset}/{wc.method}",
        opts=opts("infer"),
    log:
        f"{LOGS}/{{dataset}}/infer/{{method}}/{{shard}}.log",
    wildcard_constraints:
        method="|".join(TRAINED) or "^$",
    priority: PRIORITY["infer"]
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff infer-shard --results {params.results} --shards {input.shards} --shard {wildcards.shard}"
        " --checkpoint {input.checkpoint} --out-dir {params.out_dir} --out {output} --opts {params.opts} > {log} 2>&1"


rule baseline:
    input:
        tables=dataset_tables,
        shards=f"{RESULTS}/{{dataset}}/test_shards.parquet",
    output:
        f"{PREDICTIONS}/{{dataset}}/shards/{{method}}/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        out_dir=lambda wc: f"{PREDICTIONS}/{wc.dataset}/{wc.method}",
        opts=opts("baseline"),
    log:
        f"{LOGS}/{{dataset}}/infer/{{method}}/{{shard}}.log",
    wildcard_constraints:
        method="|".join(BASELINES) or "^$",
    priority: PRIORITY["baseline"]
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff infer-shard --results {params.results} --shards {input.shards} --shard {wildcards.shard}"
        " --method {wildcards.method} --out-dir {params.out_dir} --out {output} --opts {params.opts} > {log} 2>&1"
