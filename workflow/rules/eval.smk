# Scoring and the leaderboard: every method, ground truth included, through the
# same metric code with the protocol pinned in ksdiff/metrics/protocol.py.

rule syncnet_expert:
    input:
        dataset_tables,
    output:
        f"{MODELS}/{{dataset}}/syncnet/expert.pt",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("syncnet_expert"),
    log:
        f"{LOGS}/{{dataset}}/syncnet_expert.log",
    # Every evaluation waits for it: started first, it trains beside the models instead of after them.
    priority: PRIORITY["syncnet_expert"]
    threads: EXPERT_THREADS
    resources:
        mem_mb=6000,
        runtime=240,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff syncnet-expert --results {params.results} --out {output} --opts {params.opts} > {log} 2>&1"


# Scoring: one job per method and shard of test clips (the SyncNet weights loaded once
# per job), merged per method in shard order.
rule evaluate:
    input:
        tables=dataset_tables,
        shards=f"{RESULTS}/{{dataset}}/test_shards.parquet",
        predictions=f"{PREDICTIONS}/{{dataset}}/shards/{{method}}/{{shard}}.parquet",
        syncnet=syncnet_weights,
        weights=weight_files(config, "evaluate"),  # FID/FVD/LPIPS/CSIM/FLAME files the config names
    output:
        f"{METRICS}/{{dataset}}/shards/{{method}}/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        predictions=lambda wc: f"{PREDICTIONS}/{wc.dataset}/{wc.method}",
        opts=opts("evaluate"),
    log:
        f"{LOGS}/{{dataset}}/evaluate/{{method}}/{{shard}}.log",
    wildcard_constraints:
        method="|".join(TRAINED + BASELINES),
    priority: PRIORITY["evaluate"]
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff evaluate --results {params.results} --predictions {params.predictions}"
        " --method {wildcards.method} --syncnet {input.syncnet} --shards {input.shards} --shard {wildcards.shard}"
        " --out {output} --opts {params.opts} > {log} 2>&1"


rule evaluate_ground_truth:
    input:
        tables=dataset_tables,
        shards=f"{RESULTS}/{{dataset}}/test_shards.parquet",
        syncnet=syncnet_weights,
        weights=weight_files(config, "evaluate_ground_truth"),  # FID/FVD/LPIPS/CSIM/FLAME files the config names
    output:
        f"{METRICS}/{{dataset}}/shards/ground_truth/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("evaluate_ground_truth"),
    log:
        f"{LOGS}/{{dataset}}/evaluate/ground_truth/{{shard}}.log",
    priority: PRIORITY["evaluate_ground_truth"]
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff evaluate --results {params.results} --method ground_truth"
        " --syncnet {input.syncnet} --shards {input.shards} --shard {wildcards.shard} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule merge_metrics:
    input:
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        parts=lambda wc: [f"{METRICS}/{wc.dataset}/shards/{wc.method}/{s}.parquet" for s in test_shards(wc.dataset)],
    output:
        report(f"{METRICS}/{{dataset}}/{{method}}.parquet", caption="../report/metrics.rst", category="Metrics"),
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("merge_metrics"),
    log:
        f"{LOGS}/{{dataset}}/evaluate/{{method}}.log",
    wildcard_constraints:
        method="|".join(TRAINED + BASELINES + ["ground_truth"]),
    priority: PRIORITY["merge_metrics"]
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-metrics --results {params.results} --parts {input.parts} --method {wildcards.method}"
        " --out {output} --opts {params.opts} > {log} 2>&1"


# Other systems' videos (eval.external), one job per shard of a method's videos: each video is
# placed against the dataset's clips, its audio checked against its ground-truth clip's
# (ksdiff.metrics.external_qc), then the shard is scored; both merged per method. The merged
# external QC table is what the leaderboard shows of every video, scored or not and why.
rule external_check:
    input:
        # which clips are usable test clips (the clips' own tables come before QC)
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        splits=f"{RESULTS}/{{dataset}}/splits.parquet",
        manifest=lambda wc: f"{RESULTS}/{plan.external_dataset(wc.dataset, wc.method)}/manifest/{wc.shard}.parquet",
        videos=external_shard("audio", "coeffs"),
    output:
        f"{RESULTS}/{{dataset}}/external_qc/{{method}}/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        external=lambda wc: f"{RESULTS}/{plan.external_dataset(wc.dataset, wc.method)}",
        opts=opts("external_check"),
    log:
        f"{LOGS}/{{dataset}}/external_check/{{method}}/{{shard}}.log",
    wildcard_constraints:
        method="|".join(EXTERNAL),
    priority: PRIORITY["external_check"]
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff external-check --results {params.results} --external {params.external} --manifest {input.manifest}"
        " --method {wildcards.method} --out {output} --opts {params.opts} > {log} 2>&1"


rule merge_external_qc:
    input:
        external_parts(f"{RESULTS}/{{dataset}}/external_qc/{{method}}/{{shard}}.parquet"),
    output:
        f"{RESULTS}/{{dataset}}/external_qc/{{method}}.parquet",
    params:
        opts=opts("merge_external_qc"),
    log:
        f"{LOGS}/{{dataset}}/external_check/{{method}}.log",
    wildcard_constraints:
        method="|".join(EXTERNAL),
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-external-qc --parts {input} --out {output} --opts {params.opts} > {log} 2>&1"


rule evaluate_external:
    input:
        tables=dataset_tables,
        checks=f"{RESULTS}/{{dataset}}/external_qc/{{method}}/{{shard}}.parquet",
        videos=external_shard("audio", "landmarks", "coeffs"),
        syncnet=syncnet_weights,
        weights=weight_files(config, "evaluate_external"),  # FID/FVD/LPIPS/CSIM/FLAME files the config names
    output:
        f"{METRICS}/{{dataset}}/shards/ext-{{method}}/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        predictions=lambda wc: f"{RESULTS}/{plan.external_dataset(wc.dataset, wc.method)}/coeffs",
        opts=opts("evaluate_external"),
    log:
        f"{LOGS}/{{dataset}}/evaluate/ext-{{method}}/{{shard}}.log",
    wildcard_constraints:
        method="|".join(EXTERNAL),
    priority: PRIORITY["evaluate_external"]
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff evaluate --results {params.results} --predictions {params.predictions} --external"
        " --checks {input.checks} --method {wildcards.method} --syncnet {input.syncnet} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule merge_external_metrics:
    input:
        qc=f"{RESULTS}/{{dataset}}/qc.parquet",
        parts=external_parts(f"{METRICS}/{{dataset}}/shards/ext-{{method}}/{{shard}}.parquet"),
    output:
        report(f"{METRICS}/{{dataset}}/ext-{{method}}.parquet", caption="../report/metrics.rst", category="Metrics"),
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("merge_metrics"),
    log:
        f"{LOGS}/{{dataset}}/evaluate/ext-{{method}}.log",
    wildcard_constraints:
        method="|".join(EXTERNAL),
    priority: PRIORITY["merge_external_metrics"]
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-metrics --results {params.results} --parts {input.parts} --method {wildcards.method} --external"
        " --out {output} --opts {params.opts} > {log} 2>&1"


# Does each metric score ground truth above the floors (mismatched motion, static face)?
# Paired over clips; ksdiff.report.sanity. The leaderboard opens with this table.
rule sanity:
    input:
        metrics=lambda wc: [f"{METRICS}/{wc.dataset}/{m}.parquet" for m in ["ground_truth"] + FLOORS],
    output:
        report(f"{METRICS}/{{dataset}}/sanity.parquet", caption="../report/sanity.rst", category="Metrics"),
    params:
        opts=opts("sanity"),
    log:
        f"{LOGS}/{{dataset}}/sanity.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff sanity --metrics {input.metrics} --out {output} --opts {params.opts} > {log} 2>&1"


rule leaderboard:
    input:
        metrics=lambda wc: [f"{METRICS}/{wc.dataset}/{m}.parquet" for m in ["ground_truth"] + TRAINED + BASELINES]
        + [f"{METRICS}/{wc.dataset}/ext-{m}.parquet" for m in EXTERNAL],
        sanity=f"{METRICS}/{{dataset}}/sanity.parquet",
        external_qc=lambda wc: [f"{RESULTS}/{wc.dataset}/external_qc/{m}.parquet" for m in EXTERNAL],
        predictions=lambda wc: [p for m in TRAINED + BASELINES for p in predictions_for(wc.dataset, m)],
    output:
        md=f"{REPORTS}/{{dataset}}/leaderboard.md",
        html=report(f"{REPORTS}/{{dataset}}/leaderboard.html", caption="../report/leaderboard.rst", category="Leaderboard"),
        plots=report(
            directory(f"{REPORTS}/{{dataset}}/plots"),
            patterns=["{name}.png"],
            caption="../report/plots.rst",
            category="Leaderboard",
        ),
    params:
        models=lambda wc: f"{MODELS}/{wc.dataset}",  # parameter counts (train_log.csv)
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        predictions=lambda wc: " ".join(f"{m}={PREDICTIONS}/{wc.dataset}/{m}" for m in TRAINED + BASELINES)
        + "".join(f" {m}={RESULTS}/{plan.external_dataset(wc.dataset, m)}/coeffs" for m in EXTERNAL),
        opts=opts("report"),
    log:
        f"{LOGS}/{{dataset}}/leaderboard.log",
    threads: 1
    resources:
        mem_mb=4000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff report --metrics {input.metrics} --out-md {output.md} --out-html {output.html}"
        " --plots-dir {output.plots} --results {params.results} --predictions {params.predictions}"
        " --sanity {input.sanity} --external-qc {input.external_qc} --models {params.models} --opts {params.opts}"
        " > {log} 2>&1"
