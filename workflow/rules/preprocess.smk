# Per-clip preprocessing: one Parquet table per clip per step. A step that
# cannot handle a clip still writes its table, marked failed or skipped with the
# reason, so one bad clip never stops the run (see ksdiff/io/parquet.py).


checkpoint manifest:
    input:
        synth_marker,
    output:
        f"{RESULTS}/{{dataset}}/manifest.parquet",
    params:
        root=dataset_root,
        layout=lambda wc: DATASETS[wc.dataset]["layout"],
        opts=opts(),
    log:
        f"{LOGS}/{{dataset}}/manifest.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff manifest --root {params.root} --dataset {wildcards.dataset} --layout {params.layout}"
        " --out {output} --opts {params.opts} > {log} 2>&1"


rule audio:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
    output:
        wav=f"{RESULTS}/{{dataset}}/audio/{{clip}}.wav",
        table=f"{RESULTS}/{{dataset}}/audio/{{clip}}.parquet",
    params:
        opts=opts(),
    log:
        f"{LOGS}/{{dataset}}/audio/{{clip}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff audio --manifest {input.manifest} --clip {wildcards.clip} --out-wav {output.wav}"
        " --out {output.table} --opts {params.opts} > {log} 2>&1"


rule transcript:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
        audio=f"{RESULTS}/{{dataset}}/audio/{{clip}}.parquet",
        wav=f"{RESULTS}/{{dataset}}/audio/{{clip}}.wav",
        text=known_text,
    output:
        f"{RESULTS}/{{dataset}}/transcripts/{{clip}}.parquet",
    params:
        opts=opts("transcript"),
    log:
        f"{LOGS}/{{dataset}}/transcript/{{clip}}.log",
    threads: 1
    resources:
        mem_mb=1500,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff transcript --manifest {input.manifest} --clip {wildcards.clip} --audio {input.audio}"
        " --out {output} --opts {params.opts} > {log} 2>&1"


rule landmarks:
    input:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
    output:
        f"{RESULTS}/{{dataset}}/landmarks/{{clip}}.parquet",
    params:
        opts=opts("landmarks"),
    log:
        f"{LOGS}/{{dataset}}/landmarks/{{clip}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff landmarks --manifest {input.manifest} --clip {wildcards.clip} --out {output}"
        " --opts {params.opts} > {log} 2>&1"


rule pose:
    input:
        f"{RESULTS}/{{dataset}}/landmarks/{{clip}}.parquet",
    output:
        f"{RESULTS}/{{dataset}}/pose/{{clip}}.parquet",
    params:
        opts=opts("coeffs"),
    log:
        f"{LOGS}/{{dataset}}/pose/{{clip}}.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff pose --landmarks {input} --out {output} --opts {params.opts} > {log} 2>&1"


if config["coeffs"]["backend"] == "landmarks":

    rule coeffs:
        input:
            pose=f"{RESULTS}/{{dataset}}/pose/{{clip}}.parquet",
            basis=basis_of,
        output:
            f"{RESULTS}/{{dataset}}/coeffs/{{clip}}.parquet",
        params:
            opts=opts("coeffs"),
        log:
            f"{LOGS}/{{dataset}}/coeffs/{{clip}}.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            "../../envs/ksdiff.yaml"
        shell:
            "ksdiff coeffs --pose {input.pose} --basis {input.basis} --out {output} --opts {params.opts} > {log} 2>&1"

else:

    # FLAME coefficients from a local DECA checkout (coeffs.deca_dir), on crops
    # from our landmarks. The landmark mesh (pose, basis) is still fitted: the
    # renderer works on landmark meshes (LVE uses FLAME's own, ksdiff.metrics.flame).
    rule coeffs:
        input:
            manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
            landmarks=f"{RESULTS}/{{dataset}}/landmarks/{{clip}}.parquet",
        output:
            f"{RESULTS}/{{dataset}}/coeffs/{{clip}}.parquet",
        params:
            opts=opts("coeffs"),
        log:
            f"{LOGS}/{{dataset}}/coeffs/{{clip}}.log",
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            "../../envs/ksdiff.yaml"
        shell:
            "ksdiff deca --manifest {input.manifest} --clip {wildcards.clip} --landmarks {input.landmarks}"
            " --out {output} --opts {params.opts} > {log} 2>&1"


rule features:
    input:
        audio=f"{RESULTS}/{{dataset}}/audio/{{clip}}.parquet",
        wav=f"{RESULTS}/{{dataset}}/audio/{{clip}}.wav",
    output:
        f"{RESULTS}/{{dataset}}/features/{{clip}}.parquet",
    params:
        opts=opts("features"),
    log:
        f"{LOGS}/{{dataset}}/features/{{clip}}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/ksdiff.yaml"
    shell:
        "ksdiff features --audio {input.audio} --out {output} --opts {params.opts} > {log} 2>&1"
