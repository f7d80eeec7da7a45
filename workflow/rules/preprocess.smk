# Per-clip preprocessing, one job per shard of clips (ksdiff.data.shards): each job
# loops over its shard's clips and writes one Parquet table per clip per step,
# skipping clips whose table is current (same options, newer than its inputs).
# A step that cannot handle a clip still writes its table, marked failed or
# skipped with the reason, so one bad clip never stops the run
# (ksdiff/io/parquet.py). Each job's output is its shard summary
# (results/{dataset}/shards/{step}/{shard}.parquet), which the next step depends on.


# The clips of a dataset root and their shards (no probing: a quick scan).
checkpoint listing:
    input:
        synth_marker,
    output:
        f"{RESULTS}/{{dataset}}/listing.parquet",
    params:
        root=dataset_root,
        layout=lambda wc: DATASETS[wc.dataset]["layout"],
        opts=opts("listing"),
    log:
        f"{LOGS}/{{dataset}}/listing.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff list --root {params.root} --dataset {wildcards.dataset} --layout {params.layout}"
        " --out {output} --opts {params.opts} > {log} 2>&1"


# Probe and hash one shard's videos: that shard's part of the manifest, which the
# shard's extraction jobs read.
rule probe:
    input:
        f"{RESULTS}/{{dataset}}/listing.parquet",
    output:
        f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
    params:
        opts=opts("probe"),
    log:
        f"{LOGS}/{{dataset}}/probe/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff probe --listing {input} --shard {wildcards.shard} --out {output} --opts {params.opts} > {log} 2>&1"


rule manifest:
    input:
        listing=f"{RESULTS}/{{dataset}}/listing.parquet",
        parts=per_shard(f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet"),
    output:
        f"{RESULTS}/{{dataset}}/manifest.parquet",
    params:
        parts=lambda wc: f"{RESULTS}/{wc.dataset}/manifest",
        opts=opts("manifest"),
    log:
        f"{LOGS}/{{dataset}}/manifest.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff merge-manifest --listing {input.listing} --parts {params.parts} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule audio:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/shards/audio/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("audio"),
    log:
        f"{LOGS}/{{dataset}}/audio/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff shard --stage audio --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule transcript:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
        audio=f"{RESULTS}/{{dataset}}/shards/audio/{{shard}}.parquet",
        text=known_text,
        weights=weight_files(config, "transcript"),  # a whisper model folder's files (transcript.backend whisper)
    output:
        f"{RESULTS}/{{dataset}}/shards/transcript/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("transcript"),
    log:
        f"{LOGS}/{{dataset}}/transcript/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1500,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff shard --stage transcript --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule landmarks:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/shards/landmarks/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("landmarks"),
    log:
        f"{LOGS}/{{dataset}}/landmarks/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff shard --stage landmarks --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule pose:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
        landmarks=f"{RESULTS}/{{dataset}}/shards/landmarks/{{shard}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/shards/pose/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("pose"),
    log:
        f"{LOGS}/{{dataset}}/pose/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff shard --stage pose --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


if config["coeffs"]["backend"] == "landmarks":

    rule coeffs:
        input:
            manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
            pose=f"{RESULTS}/{{dataset}}/shards/pose/{{shard}}.parquet",
            basis=basis_of,
        output:
            f"{RESULTS}/{{dataset}}/shards/coeffs/{{shard}}.parquet",
        params:
            results=lambda wc: f"{RESULTS}/{wc.dataset}",
            opts=opts("coeffs"),
        log:
            f"{LOGS}/{{dataset}}/coeffs/{{shard}}.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            "../../envs/ksdiff.yaml"
        shell:
            "ksdiff shard --stage coeffs --manifest {input.manifest} --results {params.results}"
            " --basis {input.basis} --out {output} --opts {params.opts} > {log} 2>&1"

else:

    # FLAME coefficients from a local DECA checkout (coeffs.deca_dir), on crops
    # from our landmarks. The landmark mesh (pose, basis) is still fitted: the
    # renderer works on landmark meshes (LVE uses FLAME's own, ksdiff.metrics.flame).
    rule coeffs:
        input:
            manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
            landmarks=f"{RESULTS}/{{dataset}}/shards/landmarks/{{shard}}.parquet",
        output:
            f"{RESULTS}/{{dataset}}/shards/coeffs/{{shard}}.parquet",
        params:
            results=lambda wc: f"{RESULTS}/{wc.dataset}",
            opts=opts("deca"),
        log:
            f"{LOGS}/{{dataset}}/coeffs/{{shard}}.log",
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            "../../envs/ksdiff.yaml"
        shell:
            "ksdiff shard --stage deca --manifest {input.manifest} --results {params.results} --out {output}"
            " --opts {params.opts} > {log} 2>&1"


rule features:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest/{{shard}}.parquet",
        audio=f"{RESULTS}/{{dataset}}/shards/audio/{{shard}}.parquet",
        weights=weight_files(config, "features"),  # the speech encoder's files (features.kind wav2vec2/hubert)
    output:
        f"{RESULTS}/{{dataset}}/shards/features/{{shard}}.parquet",
    params:
        results=lambda wc: f"{RESULTS}/{wc.dataset}",
        opts=opts("features"),
    log:
        f"{LOGS}/{{dataset}}/features/{{shard}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff shard --stage features --manifest {input.manifest} --results {params.results} --out {output}"
        " --opts {params.opts} > {log} 2>&1"
